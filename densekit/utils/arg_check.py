"""Argument checks shared by densekit's datasets and transforms."""
from typing import Iterable, Optional


def check_str_arg(owner: str, name: str, value,
                  choices: Optional[Iterable[str]] = None) -> None:
    """Raise ``TypeError`` unless ``value`` is a non-empty str, and
    ``ValueError`` unless it is one of ``choices`` (when given); messages
    name ``owner`` (the class) and the argument."""
    if not isinstance(value, str) or not value:
        raise TypeError(f'{owner}: {name} must be a non-empty str, but '
                        f'got {value!r}')
    if choices is not None and value not in tuple(choices):
        raise ValueError(f'{owner}: {name} must be one of '
                         f'{tuple(choices)}, but got {value!r}')
