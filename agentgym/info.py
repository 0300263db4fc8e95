"""Info values computed only when read: :class:`Deferred` and the step ``info`` that holds them, :class:`LazyInfo`.

A family hands :class:`~agentgym.core.Transition` a zero-argument callable for a value that is costly to get
from its engine (ScienceWorld's admissible actions); the base class wraps it in a :class:`Deferred`, and
``info`` computes it the first time it is read.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, ClassVar


class Deferred:
    """A value computed by ``compute()`` the first time it is read, then remembered.

    A family passes one as :attr:`Transition.admissible_actions` or :attr:`Transition.expert_action`
    when that value is costly to get from its engine; ``info`` then computes it only when read.
    """

    __slots__ = ("_compute", "_value")
    _PENDING: ClassVar[object] = object()

    def __init__(self, compute: Callable[[], Any]):
        self._compute = compute
        self._value: Any = Deferred._PENDING

    def __call__(self) -> Any:
        if self._value is Deferred._PENDING:
            self._value = self._compute()
            self._compute = None  # free what the computation held on to
        return self._value


class LazyInfo(dict):
    """A step's ``info`` whose :class:`Deferred` values are computed on first read.

    It behaves as a plain dict with every key present: ``info[key]``, ``info.get(key)``, iteration,
    ``items()``, copies, ``==``, ``json.dumps`` and pickling all see the computed values. Reading only
    other keys (``info["won"]``) computes nothing. ``info.copy()`` stays lazy (and shares the
    computation); ``dict(info)`` computes everything.
    """

    def __init__(self, values: Mapping[str, Any], deferred: Mapping[str, Deferred]):
        super().__init__((key, value) for key, value in values.items() if key not in deferred)
        self._order = tuple(values)
        self._deferred = dict(deferred)

    def _resolve(self, key: Any = None) -> None:
        if not self._deferred or (key is not None and key not in self._deferred):
            return
        for name in [key] if key is not None else list(self._deferred):
            value = self._deferred.pop(name)()
            dict.__setitem__(self, name, list(value) if isinstance(value, list) else value)
        ordered = [(name, dict.__getitem__(self, name)) for name in self._order if dict.__contains__(self, name)]
        extra = [(name, value) for name, value in dict.items(self) if name not in self._order]
        dict.clear(self)
        dict.update(self, ordered + extra)

    def __missing__(self, key: Any) -> Any:
        if key in self._deferred:
            self._resolve(key)
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._resolve(key)
        return dict.get(self, key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._deferred or dict.__contains__(self, key)

    def pending(self) -> tuple[str, ...]:
        """The keys whose values are not computed yet (reading one computes it)."""
        return tuple(self._deferred)

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._deferred)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._deferred.pop(key, None)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        if self._deferred.pop(key, None) is None:
            dict.__delitem__(self, key)

    def copy(self) -> LazyInfo:
        values = {name: dict.get(self, name) for name in self._order}
        values.update(dict.items(self))
        return LazyInfo(values, self._deferred)

    def __reduce_ex__(self, protocol: Any) -> Any:  # pickles as a plain dict (unpickling needs no agentgym)
        self._resolve()
        return dict, (dict(dict.items(self)),)

    def __copy__(self) -> LazyInfo:
        return self.copy()

    def __deepcopy__(self, memo: dict) -> LazyInfo:
        """A LazyInfo again (``type(copy) is type(info)``, as Gymnasium's ``data_equivalence`` wants), with
        every value computed and deep-copied."""
        self._resolve()
        return LazyInfo(copy.deepcopy(dict(dict.items(self)), memo), {})

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)

    __hash__ = None  # type: ignore[assignment]


def _resolving(method: Callable[..., Any]) -> Callable[..., Any]:
    def whole(self: LazyInfo, *args: Any, **kwargs: Any) -> Any:
        self._resolve()
        return method(self, *args, **kwargs)

    whole.__name__ = method.__name__
    return whole


# Whole-dict operations compute every deferred value first, then act as dict does.
for _name in ("__iter__", "__reversed__", "keys", "items", "values", "__repr__", "__eq__", "__ne__",
              "__or__", "__ror__", "__ior__", "pop", "popitem", "setdefault", "update", "clear"):
    setattr(LazyInfo, _name, _resolving(getattr(dict, _name)))
del _name
