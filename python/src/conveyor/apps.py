from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConveyorConfig(AppConfig):
    name = "conveyor"
    label = "conveyor"
    verbose_name = "Conveyor outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from conveyor import checks  # noqa: F401  (registers system checks)
        from conveyor.permissions import create_operate_permission

        post_migrate.connect(
            create_operate_permission,
            sender=self,
            dispatch_uid="conveyor.permissions.create_operate_permission",
        )
