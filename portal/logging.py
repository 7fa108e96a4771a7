import logging

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class ContextFormatter(logging.Formatter):
    """Log events are dotted slugs; what they are about rides along in `extra`, shown as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = {key: value for key, value in vars(record).items() if key not in _STANDARD}
        if context:
            text += " " + " ".join(f"{key}={value}" for key, value in context.items())
        return text
