import pytest

from aerialseg import registry
from aerialseg.config import Paper
from aerialseg.profiles import PROFILES


def test_papers_are_discovered_with_their_methods_and_chapters():
    papers = registry.papers()
    assert set(papers) == {"kampffmeyer", "uce", "efm", "cse_unet", "lossd"}
    assert all(isinstance(p, Paper) for p in papers.values())
    assert registry.paper_of("fcn_mfb").key == "kampffmeyer"
    assert registry.paper_of("uce_a10").key == "uce"
    assert "06_uce" in papers["uce"].chapters


def test_every_method_has_values_for_every_profile_and_callable_hooks():
    for name, spec in registry.all_methods().items():
        assert set(spec.profiles) == set(PROFILES), name
        assert spec.setup is None or callable(spec.setup), name
        assert callable(spec.samples) or isinstance(spec.samples, str), name


def test_claims_and_paper_results_name_registered_methods_and_chapters():
    methods = registry.all_methods()
    for c in registry.claims():
        assert c.baseline in methods and c.chapter, c
        assert c.method in methods or c.method.startswith("ens_"), c
    assert {r.method for r in registry.paper_results()} <= set(methods)


def test_declared_keeps_only_the_non_none_values_a_method_takes():
    values = {"base_width": 16, "encoder": "resnet18", "epochs": 3, "lr": None}
    assert registry.declared("cse_unet", values) == {"base_width": 16, "epochs": 3}
    assert registry.declared("smp_unet_r34", values) == {"encoder": "resnet18", "epochs": 3}


def test_resolve_ignores_undeclared_names_left_at_none_but_rejects_set_ones():
    cfg = registry.resolve_run("fcn", profile="smoke", in_bands=("ir",), data={},
                               uce_mc_samples=None)
    assert cfg.spec is registry.get_method("fcn")
    assert "spec" not in cfg.to_dict()
    with pytest.raises(ValueError, match="uce_mc_samples"):
        registry.resolve_run("fcn", profile="smoke", in_bands=("ir",), data={},
                             uce_mc_samples=3)


def test_chapter_defaults_come_from_the_declaring_paper():
    assert registry.chapter_defaults("06_uce").settings["test_mc_samples"]["full"] == 10
    assert registry.chapter_defaults("01_data").settings == {}


def test_available_methods():
    assert registry.available_methods(["pb", "nope", "fcn"]) == ["pb", "fcn"]
    with pytest.raises(ValueError, match="registered"):
        registry.available_methods(["nope"])
