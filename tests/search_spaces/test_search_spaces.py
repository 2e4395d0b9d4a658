"""Search-space files: the shipped ones load, and every kind of mistake is a clear error
that names the file, the key and what was expected, before any Ray starts."""

from __future__ import annotations

import time

import pytest

import search_spaces
from helpers import cli, make_data
from search_spaces import SpaceError, load, parse

GOOD_OPTUNA = {
    "name": "s",
    "kind": "optuna",
    "num_samples": 3,
    "fixed": {"method": "vae"},
    "strata": {"n_f": [5, 10]},
    "params": {
        "beta_schedule": {"type": "categorical", "choices": ["linear", "cyclical"]},
        "beta_cycles": {"type": "int", "low": 1, "high": 4, "when": {"beta_schedule": "cyclical"}},
        "latent_dim": {"type": "int", "low": 8, "high": 64, "log": True},
    },
}


def with_(base: dict, **changes) -> dict:
    out = {**base}
    out.update(changes)
    return out


@pytest.mark.parametrize("name", ["paper", "search", "ablations", "smoke", "smoke-search"])
def test_shipped_spaces_load_and_validate(name):
    space = load(name)
    assert space.name == name
    assert search_spaces.count(space) >= 3


def test_paper_grid_is_table2_methods_times_n_f_times_seeds():
    space = load("paper")
    trials = space.trials()
    rows = {(t["method"], t.get("sampling_factor")) for t in trials}
    assert rows == {
        ("plain", None),
        ("oversample", 30),
        ("oversample", 50),
        ("vae", 30),
        ("vae", 50),
    }
    assert sorted({t["n_f"] for t in trials}) == [5, 10, 30, 50]
    assert len(trials) == 5 * 4 * 3


def test_shipped_search_space_stratifies_n_f():
    space = load("search")
    assert space.kind == "optuna"
    assert space.strata == {"n_f": [5, 10, 30, 50]}
    assert "n_f" not in space.params
    assert search_spaces.count(space) == 4 * space.num_samples


def test_unknown_top_level_key_is_named():
    with pytest.raises(SpaceError, match="unknown top-level key.*'sampels'"):
        parse(with_(GOOD_OPTUNA, sampels=3))


def test_unknown_config_key_is_named_with_a_hint():
    bad = with_(GOOD_OPTUNA, fixed={"methd": "vae"})
    with pytest.raises(SpaceError, match="fixed: unknown config key 'methd'.*method"):
        parse(bad)


def test_bad_config_value_is_named():
    bad = with_(GOOD_OPTUNA, fixed={"method": "vea"})
    with pytest.raises(SpaceError, match="'method': 'vea' is not one of"):
        parse(bad)


def test_unknown_distribution_is_named():
    params = {**GOOD_OPTUNA["params"], "latent_dim": {"type": "gaussian", "low": 1, "high": 2}}
    with pytest.raises(SpaceError, match="params.latent_dim: unknown distribution type 'gaussian'"):
        parse(with_(GOOD_OPTUNA, params=params))


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"type": "int", "low": 64, "high": 8}, "low \\(64\\) must be below high \\(8\\)"),
        ({"type": "int", "low": 0, "high": 8, "log": True}, "log scale needs low > 0"),
        ({"type": "int", "low": 1, "high": 10**9}, "above the maximum"),
        ({"type": "float", "low": 1, "high": 8}, "does not fit config key 'latent_dim'"),
        ({"type": "categorical", "choices": []}, "non-empty choices"),
    ],
)
def test_bad_range_is_named(spec, message):
    params = {**GOOD_OPTUNA["params"], "latent_dim": spec}
    with pytest.raises(SpaceError, match=message):
        parse(with_(GOOD_OPTUNA, params=params))


def test_conditional_parameter_without_its_parent_is_refused():
    params = {
        "beta_cycles": {"type": "int", "low": 1, "high": 4, "when": {"beta_schedule": "cyclical"}},
        "latent_dim": {"type": "int", "low": 8, "high": 64},
    }
    with pytest.raises(SpaceError, match="parent 'beta_schedule' is not a searched parameter"):
        parse(with_(GOOD_OPTUNA, params=params))


def test_conditional_on_a_value_the_parent_cannot_take_is_refused():
    params = dict(GOOD_OPTUNA["params"])
    params["beta_cycles"] = {
        "type": "int",
        "low": 1,
        "high": 4,
        "when": {"beta_schedule": "sigmoid"},
    }
    with pytest.raises(SpaceError, match="choices are \\['linear', 'cyclical'\\]"):
        parse(with_(GOOD_OPTUNA, params=params))


def test_objective_must_be_a_validation_metric():
    with pytest.raises(SpaceError, match="test metrics are reported, never optimised"):
        parse(with_(GOOD_OPTUNA, objective="test_acc_h"))


def test_a_key_cannot_be_both_searched_and_stratified():
    with pytest.raises(SpaceError, match="both searched"):
        parse(with_(GOOD_OPTUNA, strata={"latent_dim": [8]}))


def test_grid_expands_variants_times_grid():
    space = parse(
        {
            "name": "g",
            "kind": "grid",
            "grid": {"n_f": [5, 10], "seed": [0, 1]},
            "variants": [
                {"method": "plain"},
                {"method": ["vae", "crt"], "sampling_factor": [30, 50]},
            ],
        }
    )
    trials = space.trials()
    assert len(trials) == (1 + 2 * 2) * 2 * 2
    assert {"method": "plain", "n_f": 10, "seed": 1} in trials
    assert {"method": "crt", "sampling_factor": 50, "n_f": 5, "seed": 0} in trials


def test_invalid_yaml_syntax_is_an_error_naming_the_file(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("name: x\nkind: grid\ngrid: {n_f: [5, 10\n")
    with pytest.raises(SpaceError, match="broken.yaml: not valid YAML"):
        load(f)


def test_missing_space_file_lists_the_shipped_ones():
    with pytest.raises(SpaceError, match="no such file.*paper"):
        load("no/such/space.yaml")


def test_cli_rejects_bad_yaml_before_ray_starts(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: bad\nkind: optuna\nparams:\n  latent_dim: {type: int, low: 9, high: 3}\n")
    data = tmp_path / "data"
    data.mkdir()
    t0 = time.perf_counter()
    proc = cli("run", "--space", str(f), "--data", str(data), "--storage", str(tmp_path / "s"))
    assert proc.returncode == 2
    assert "low (9) must be below high (3)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Started a local Ray" not in proc.stderr + proc.stdout
    assert not (tmp_path / "s").exists()  # nothing was created
    assert time.perf_counter() - t0 < 60


def test_resume_with_a_corrupt_study_json_is_a_clear_error(tmp_path):
    study_dir = tmp_path / "s" / "broken"
    study_dir.mkdir(parents=True)
    (study_dir / "study.json").write_text('{"name": "broken", ')
    proc = cli("resume", "--name", "broken", "--storage", str(tmp_path / "s"))
    assert proc.returncode == 2
    assert "study.json is not valid JSON" in proc.stderr and "Traceback" not in proc.stderr
    assert (study_dir / "study.json").read_text() == '{"name": "broken", '  # untouched


def test_an_optuna_storage_that_is_no_database_url_is_refused_before_anything_starts(tmp_path):
    data = make_data(tmp_path / "data")
    proc = cli(
        "run",
        "--space",
        "smoke-search",
        "--data",
        str(data),
        "--storage",
        str(tmp_path / "s"),
        "--optuna-storage",
        "nonsense://x",
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--optuna-storage 'nonsense://x': not a database URL" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()


def test_a_misspelt_top_level_key_gets_a_suggestion(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nkind: grid\ngrdi: {n_f: [5]}\n")
    with pytest.raises(
        search_spaces.SpaceError,
        match=r"unknown top-level key\(s\) \['grdi'\]; "
        r"did you mean grid\?",
    ):
        search_spaces.load(path)
