"""``Record``: an immutable, typed view of one JSON object, converted lazily.

A record holds the decoded JSON object and nothing else when it is built (one object
allocation). Each typed attribute is a :class:`cached_field`: the first access converts
the raw value and stores the result in the instance ``__dict__`` under the attribute's
own name, so every later access is a plain attribute lookup that never reaches the
descriptor again. Listing 1,000 messages therefore costs about what decoding their JSON
costs; converting every field of every record up front cost ~10 µs a record.

Records stay immutable: ``__setattr__``/``__delattr__`` raise, ``raw`` is a read-only
view, and the object given to :meth:`Record.from_payload` is copied, so later changes
to the caller's dict cannot reach a field that has not been read yet. The client adopts
the objects it decodes itself without a copy (:meth:`Record._wrap`): nobody else holds them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, TypeVar, overload

__all__ = ["Record", "cached_field"]

T = TypeVar("T")
R = TypeVar("R", bound="Record")

_new = object.__new__


class cached_field(Generic[T]):  # noqa: N801 - used as a decorator, like property
    """Decorator for a record attribute computed from the JSON object on first access.

    A non-data descriptor, like :func:`functools.cached_property` but without that
    class's lock on Python < 3.12 and without going through the record's blocking
    ``__setattr__``. Two threads reading a field for the first time at once may both
    convert it; both get equal values and one of them is kept.
    """

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> cached_field[T]: ...

    @overload
    def __get__(self, obj: object, owner: type[Any] | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        value = self.func(obj)
        obj.__dict__[self.name] = value
        return value

    if TYPE_CHECKING:  # lets type checkers flag an assignment; at run time __setattr__ refuses it

        def __set__(self, obj: object, value: NoReturn) -> NoReturn: ...


class Record:
    """Base of the REST records: the JSON object plus lazily converted, cached fields.

    Two records are equal when they are of the same class and their JSON objects are
    equal; the hash uses the class and ``sid``. Records pickle and copy (as their JSON).

    Thread-safety: immutable; share freely.
    """

    __slots__ = ("_payload", "__dict__")  # __dict__ holds the converted fields

    _kind: ClassVar[str] = "a record"  # for error messages: "a message has no 'sid'"
    _fields: ClassVar[tuple[str, ...]] = ()  # typed attributes, in definition order
    _payload: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = tuple(
            dict.fromkeys(
                name
                for klass in reversed(cls.__mro__)
                for name, value in vars(klass).items()
                if isinstance(value, cached_field)
            )
        )

    def __init__(self, payload: Mapping[str, Any]) -> None:
        """Same as :meth:`from_payload`."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"{self._kind} must be a JSON object, got {type(payload).__name__}")
        sid = payload.get("sid")
        if not isinstance(sid, str) or not sid:
            raise ValueError(f"{self._kind} has no 'sid'")
        _set_payload(self, dict(payload))

    @classmethod
    def from_payload(cls: type[R], payload: Mapping[str, Any]) -> R:
        """Build a record from a decoded JSON object (a shallow copy of it is kept).

        Nothing but ``sid`` is checked here: every other field is converted on first
        access, leniently (a value of the wrong type reads as ``None``).

        Raises:
            ValueError: ``payload`` is not an object or has no non-empty string ``sid``.
        """
        return cls(payload)

    @classmethod
    def _wrap(cls: type[R], payload: Any) -> R:
        """Adopt an object the client just decoded (no copy); else as :meth:`from_payload`."""
        if type(payload) is dict:
            sid = payload.get("sid")
            if type(sid) is str and sid:
                record = _new(cls)
                _set_payload(record, payload)
                return record
        return cls(payload)

    @cached_field
    def sid(self) -> str:
        """The resource's SID (always a non-empty string)."""
        sid: str = self._payload["sid"]
        return sid

    @cached_field
    def raw(self) -> Mapping[str, Any]:
        """A read-only view of the whole JSON object, unknown fields included.

        Shallow: nested objects are the decoded dicts.
        """
        return MappingProxyType(self._payload)

    def to_dict(self) -> dict[str, Any]:
        """Return every typed attribute (not ``raw``) by name, converting any not read yet."""
        return {name: getattr(self, name) for name in self._fields if name != "raw"}

    def __setattr__(self, name: str, value: object) -> None:
        # FrozenInstanceError (an AttributeError), as when records were frozen dataclasses.
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._payload == other._payload

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._payload["sid"]))

    def __reduce__(self) -> tuple[type[Record], tuple[dict[str, Any]]]:
        return type(self), (self._payload,)


_set_payload = Record._payload.__set__  # type: ignore[attr-defined]  # the slot's setter
