from __future__ import annotations

import pytest
from django.db import connection

_VENDOR_MARKS = {"postgres": "postgresql", "mysql": "mysql"}


def pytest_report_header() -> str:
    return f"conveyor test database: {connection.vendor} ({connection.settings_dict['ENGINE']})"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark, vendor in _VENDOR_MARKS.items():
            if item.get_closest_marker(mark) and connection.vendor != vendor:
                item.add_marker(
                    pytest.mark.skip(reason=f"needs {vendor}, running {connection.vendor}")
                )
