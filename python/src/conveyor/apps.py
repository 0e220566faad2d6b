from django.apps import AppConfig


class ConveyorConfig(AppConfig):
    name = "conveyor"
    label = "conveyor"
    verbose_name = "Conveyor outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from conveyor import checks  # noqa: F401  (registers system checks)
