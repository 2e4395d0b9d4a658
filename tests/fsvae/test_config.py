"""fsvae.config: keys, presets, validation, --set parsing, active keys."""

import pytest

from fsvae.config import (
    KEYS,
    PRESETS,
    ConfigError,
    active_config,
    backbone_identity,
    decides_backbone,
    describe,
    parse_overrides,
    resolve,
    stage_keys,
)

# -- unknown keys -----------------------------------------------------------------------------


def test_unknown_key_raises_config_error_naming_it():
    with pytest.raises(ConfigError, match="'no_such_knob'"):
        resolve({"no_such_knob": 1})


def test_unknown_key_message_suggests_the_close_match():
    with pytest.raises(ConfigError, match="did you mean latent_dim"):
        resolve({"latent_dims": 64})


def test_unknown_key_in_set_override_raises_config_error_naming_it():
    with pytest.raises(ConfigError, match="'samplingfactor'.*sampling_factor"):
        parse_overrides(["samplingfactor=30"])


# -- bad values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("n_f", "5", "expected an integer"),
        ("n_f", 2.5, "expected an integer"),
        ("n_f", True, "expected an integer"),
        ("beta_max", "big", "expected a number"),
        ("beta_max", float("nan"), "expected a finite number"),
        ("compile", 1, "expected true/false"),
        ("method", 3, "expected a string"),
        ("latent_dim", None, "a value is required"),
    ],
)
def test_value_of_wrong_type_raises_config_error_naming_key_and_expectation(key, value, expected):
    with pytest.raises(ConfigError, match=f"'{key}'.*{expected}"):
        resolve({key: value})


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("n_f", 0, "below the minimum 1"),
        ("seed", -1, "below the minimum 0"),
        ("backbone_momentum", 1.5, "above the maximum 1.0"),
        ("cb_beta", 1.0, "above the maximum"),
    ],
)
def test_value_out_of_range_raises_config_error_naming_key_and_bound(key, value, expected):
    with pytest.raises(ConfigError, match=f"'{key}'.*{expected}"):
        resolve({key: value})


@pytest.mark.parametrize(
    "key, value",
    [
        ("method", "resnet"),
        ("beta_schedule", "exponential"),
        ("z_test", "median"),
        ("layout", "imagenet"),
    ],
)
def test_value_not_in_choices_raises_config_error_listing_the_choices(key, value):
    with pytest.raises(ConfigError) as err:
        resolve({key: value})
    message = str(err.value)
    assert f"'{key}'" in message and repr(value) in message
    assert all(str(choice) in message for choice in KEYS[key].choices)


def test_nullable_key_accepts_none():
    assert resolve({"beta_midpoint": None})["beta_midpoint"] is None


def test_integer_valued_float_is_normalised_to_int():
    value = resolve({"n_f": 30.0})["n_f"]
    assert value == 30 and type(value) is int


def test_int_given_for_a_float_key_is_normalised_to_float():
    value = resolve({"tau": 1})["tau"]
    assert value == 1.0 and type(value) is float


# -- --set parsing ----------------------------------------------------------------------------


def test_parse_overrides_types_each_value_by_its_key():
    parsed = parse_overrides(
        [
            "n_f=5",
            "beta_max=1e-3",
            "method=crt",
            "compile=yes",
            "load_size=none",
            "sampling_factor=50.0",
        ]
    )
    assert parsed == {
        "n_f": 5,
        "beta_max": 1e-3,
        "method": "crt",
        "compile": True,
        "load_size": None,
        "sampling_factor": 50,
    }
    assert type(parsed["n_f"]) is int and type(parsed["beta_max"]) is float


@pytest.mark.parametrize(
    "text, value",
    [("true", True), ("on", True), ("1", True), ("false", False), ("off", False), ("no", False)],
)
def test_parse_overrides_reads_bool_words(text, value):
    assert parse_overrides([f"compile={text}"]) == {"compile": value}


def test_parse_overrides_keeps_text_after_the_first_equals_sign():
    assert parse_overrides(["data=/srv/a=b"]) == {"data": "/srv/a=b"}


@pytest.mark.parametrize(
    "pair, expected",
    [
        ("n_f=ten", "'n_f': cannot read 'ten' as int"),
        ("n_f=2.5", "'n_f': cannot read '2.5' as int"),
        ("beta_max=x", "'beta_max': cannot read 'x' as float"),
        ("compile=maybe", "'compile': cannot read 'maybe' as bool"),
    ],
)
def test_parse_overrides_rejects_text_not_of_the_key_type(pair, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_overrides([pair])


def test_parse_overrides_rejects_a_pair_without_equals_sign():
    with pytest.raises(ConfigError, match="KEY=VALUE.*'n_f'"):
        parse_overrides(["n_f"])


# -- presets ----------------------------------------------------------------------------------


def test_paper_preset_is_the_papers_settings():
    cfg = resolve()
    assert cfg["backbone"] == "resnet50" and cfg["backbone_epochs"] == 50
    assert cfg["latent_dim"] == 128 and cfg["vae_epochs"] == 100
    assert cfg["beta_schedule"] == "linear" and cfg["beta_warmup_epochs"] == 90
    assert cfg["beta_max"] == pytest.approx(90 * 5.6e-6)
    assert cfg["classifier_epochs"] == 10 and cfg["num_minority"] == 5
    assert cfg["method"] == "vae" and cfg["sampling_factor"] == 30


def test_resolve_returns_every_key():
    assert set(resolve()) == set(KEYS)


def test_tiny_preset_overrides_the_defaults():
    cfg = resolve(preset="tiny")
    assert {k: cfg[k] for k in PRESETS["tiny"]} == PRESETS["tiny"]


def test_override_wins_over_the_preset():
    assert resolve({"image_size": 24}, preset="tiny")["image_size"] == 24


def test_unknown_preset_raises_config_error_naming_it():
    with pytest.raises(ConfigError, match="'huge'.*paper.*tiny"):
        resolve(preset="huge")


def test_every_preset_is_a_valid_config():
    for name in PRESETS:
        resolve(preset=name)


# -- active keys ------------------------------------------------------------------------------


def test_beta_cycles_is_active_only_with_the_cyclical_schedule():
    assert "beta_cycles" not in active_config(resolve({"beta_schedule": "linear"}))
    assert "beta_cycles" in active_config(resolve({"beta_schedule": "cyclical"}))


def test_beta_cycles_is_inactive_for_a_method_without_vae_even_if_cyclical():
    cfg = resolve({"method": "crt", "beta_schedule": "cyclical"})
    assert "beta_cycles" not in active_config(cfg)


def test_linear_warmup_key_is_active_only_with_the_linear_schedule():
    assert "beta_warmup_epochs" in active_config(resolve({"beta_schedule": "linear"}))
    assert "beta_warmup_epochs" not in active_config(resolve({"beta_schedule": "sigmoid"}))


def test_sampling_factor_is_absent_for_plain_and_present_for_resampling_methods():
    assert "sampling_factor" not in active_config(resolve({"method": "plain"}))
    for method in ("oversample", "vae", "crt", "vae_mean", "noise"):
        assert "sampling_factor" in active_config(resolve({"method": method})), method


def test_sampling_factor_is_absent_for_loss_based_ablations():
    for method in ("logit_adjust", "balanced_softmax", "cb_loss"):
        assert "sampling_factor" not in active_config(resolve({"method": method})), method


def test_plain_config_has_no_vae_or_classifier_keys():
    active = active_config(resolve({"method": "plain"}))
    assert not [k for k in active if KEYS[k].stage in ("vae",)]
    assert not [k for k in active if k.startswith("classifier_")]


def test_ablation_specific_keys_are_active_only_for_their_method():
    for key, method in (
        ("tau", "logit_adjust"),
        ("cb_beta", "cb_loss"),
        ("noise_std", "noise"),
        ("z_test", "vae"),
    ):
        assert key in active_config(resolve({"method": method})), key
        assert key not in active_config(resolve({"method": "crt"})), key


def test_stage_keys_returns_only_active_keys_of_that_stage():
    keys = stage_keys(resolve({"method": "vae", "beta_schedule": "cyclical"}), "vae")
    assert "beta_cycles" in keys and "latent_dim" in keys
    assert "beta_warmup_epochs" not in keys and "n_f" not in keys


def _other_value(key, value):
    spec = KEYS[key]
    if spec.choices:
        return next(c for c in spec.choices if c != value)
    if spec.kind is bool:
        return not value
    if spec.kind is str:
        return {"backbone": "resnet18", "device": "cpu"}.get(key, "elsewhere")
    if value is None:
        return spec.kind(64)
    if spec.high is None or value + 1 <= spec.high:
        return value + 1
    return value / 2 if spec.kind is float else value - 1


@pytest.mark.parametrize("method", ["vae", "oversample", "crt"])
def test_every_key_that_changes_the_backbone_identity_is_declared_as_deciding_it(method):
    # The backbone's cache key, the grid's order and a search's shared build all rely on
    # these two agreeing: a searched key that changes the backbone must turn the build off.
    base = resolve({"method": method}, preset="tiny")
    changed = set()
    for key in KEYS:
        other = resolve({**base, key: _other_value(key, base[key])})
        if backbone_identity(other) != backbone_identity(base):
            changed.add(key)
            assert decides_backbone(key, base), key
    assert {"n_f", "seed", "backbone_epochs", "image_size", "selection_metric"} <= changed
    assert ("sampling_factor" in changed) == (method == "oversample")
    assert not changed & {"latent_dim", "beta_max", "vae_epochs", "classifier_lr"}


def test_vae_and_classifier_keys_do_not_decide_the_backbone():
    base = resolve({"method": "vae"}, preset="tiny")
    for key, spec in KEYS.items():
        if spec.stage in ("vae", "classifier") and key not in ("method", "selection_metric"):
            assert not decides_backbone(key, base), key


def test_describe_lists_every_key():
    table = describe()
    assert all(f"`{key}`" in table for key in KEYS)


def test_numpy_scalars_are_accepted_as_numbers():
    import numpy as np

    cfg = resolve({"n_f": np.int64(5), "beta_max": np.float32(0.5)})
    assert cfg["n_f"] == 5 and type(cfg["n_f"]) is int
    assert type(cfg["beta_max"]) is float
