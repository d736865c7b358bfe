"""``Record``: an immutable, typed view of one JSON object, converted lazily.

A record holds the decoded JSON object and nothing else when it is built (one object
allocation). Each typed attribute is a :class:`Field`: the first access converts the
raw value and stores the result in the instance ``__dict__`` under the attribute's own
name, so every later access is a plain attribute lookup that never reaches the
descriptor again. Listing 1,000 messages therefore costs about what decoding their JSON
costs; converting every field of every record up front cost ~10 µs a record.

Records stay immutable: ``__setattr__``/``__delattr__`` raise, ``raw`` is a read-only
view, and the object given to :meth:`Record.from_payload` is copied, so later changes
to the caller's dict cannot reach a field that has not been read yet. The client adopts
the objects it decodes itself without a copy (:func:`from_decoded`): nobody else holds them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError
from operator import itemgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn, TypeVar, overload

__all__ = ["Field", "Record", "from_decoded"]

T = TypeVar("T")
R = TypeVar("R", bound="Record")

_new = object.__new__


class Field(Generic[T]):
    """A record attribute: one JSON member, converted on first access and cached.

    ``price = Field(opt_decimal, "Cost in ...")`` reads ``payload.get("price")`` through
    ``opt_decimal`` the first time ``record.price`` is read; ``key`` names another JSON
    member (``from_`` reads ``"from"``), and ``key=None`` hands ``convert`` the whole
    object. ``doc`` becomes the attribute's docstring (``help()``, IDEs); the attribute's
    type is what ``convert`` returns.

    A non-data descriptor, like :func:`functools.cached_property` but without that
    class's lock on Python < 3.12 and without going through the record's blocking
    ``__setattr__``. Two threads reading a field for the first time at once may both
    convert it; both get equal values and one of them is kept.
    """

    def __init__(self, convert: Callable[[Any], T], doc: str, *, key: str | None = "") -> None:
        self.convert = convert
        self.key = key  # "" until __set_name__: the attribute's own name
        self.name = ""
        self.__doc__ = doc

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name
        if self.key == "":
            self.key = name

    def __repr__(self) -> str:
        return f"<Field {self.name}>"

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Field[T]: ...

    @overload
    def __get__(self, obj: Record, owner: type[Any] | None = None) -> T: ...

    def __get__(self, obj: Record | None, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        key = self.key
        payload = obj._payload
        value = self.convert(payload if key is None else payload.get(key))
        obj.__dict__[self.name] = value
        return value

    if TYPE_CHECKING:  # lets type checkers flag an assignment; at run time __setattr__ refuses it

        def __set__(self, obj: Record, value: NoReturn) -> NoReturn: ...


def from_decoded(cls: type[R]) -> Callable[[Any], R]:
    """The function a resource builds ``cls`` records with from the JSON it decoded.

    It adopts a decoded dict without copying it (nobody else holds it) and otherwise
    behaves like :meth:`Record.from_payload` (``ValueError`` for a malformed object).
    """
    return cls._wrap


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

    def __init_subclass__(cls, *, kind: str = "", **kwargs: Any) -> None:
        """``class MessageRecord(Record, kind="a message")``: ``kind`` names it in errors."""
        super().__init_subclass__(**kwargs)
        if kind:
            cls._kind = kind
        cls._fields = tuple(
            dict.fromkeys(
                name
                for klass in reversed(cls.__mro__)
                for name, value in vars(klass).items()
                if isinstance(value, Field)
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

    # itemgetter: the constructor checked it, so no conversion (and no Python call) is needed.
    sid: Field[str] = Field(itemgetter("sid"), "The resource's SID (always a non-empty string).", key=None)
    raw: Field[Mapping[str, Any]] = Field(
        MappingProxyType,
        """A read-only view of the whole JSON object, unknown fields included.

        Shallow: nested objects are the decoded dicts.
        """,
        key=None,
    )

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
