import pytest

from robbench.errors import RobbenchError
from robbench.registry import Registry


def make_registry() -> Registry[int]:
    reg: Registry[int] = Registry("widget")
    reg.add("pgd100", 1)
    reg.add("pgd20", 2)
    return reg


def test_registered_entry_is_found_by_id():
    assert make_registry().get("pgd20") == 2


def test_unknown_id_suggests_the_closest_known_ids():
    with pytest.raises(RobbenchError, match=r"unknown widget 'pgd200'; did you mean pgd20"):
        make_registry().get("pgd200")


def test_unknown_id_without_close_match_lists_the_known_ids():
    with pytest.raises(RobbenchError) as info:
        make_registry().get("zzz")
    assert "did you mean" not in str(info.value)
    assert "known: pgd100, pgd20" in str(info.value)


def test_registering_an_id_twice_is_refused():
    reg = make_registry()
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("pgd20", 3)


def test_decorator_registers_and_returns_the_entry():
    reg: Registry = Registry("thing")

    @reg.register("f")
    def f():
        return 1

    assert reg.get("f") is f and list(reg) == ["f"]
