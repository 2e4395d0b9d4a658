"""fsvae.vae: beta schedules (paper Sec. 3.2 and the named alternatives) and the VAE stage."""

import math

import pytest
import torch

from fsvae import vae
from fsvae.config import resolve

BETA_MAX = 5.04e-4


def beta(epoch: int, **overrides) -> float:
    return vae.beta_at(epoch, resolve(overrides))


# -- linear (the paper's) ---------------------------------------------------------------------


def test_linear_beta_starts_at_zero():
    assert beta(0) == 0.0


def test_linear_beta_grows_by_the_papers_5_6e_6_per_epoch():
    assert beta(1) == pytest.approx(5.6e-6)
    assert beta(11) - beta(10) == pytest.approx(5.6e-6)


def test_linear_beta_is_half_way_at_epoch_45():
    assert beta(45) == pytest.approx(2.52e-4)


def test_linear_beta_reaches_beta_max_at_epoch_90_and_stays():
    assert beta(90) == pytest.approx(BETA_MAX)
    assert beta(99) == pytest.approx(BETA_MAX)


def test_linear_beta_with_zero_warmup_is_beta_max_from_the_start():
    assert beta(0, beta_warmup_epochs=0) == pytest.approx(BETA_MAX)


# -- constant ---------------------------------------------------------------------------------


def test_constant_beta_is_beta_max_at_every_epoch():
    values = [beta(e, beta_schedule="constant", beta_max=0.25) for e in (0, 1, 50, 99)]
    assert values == [0.25] * 4


# -- cyclical (Fu et al. 2019) ----------------------------------------------------------------

CYC = {
    "beta_schedule": "cyclical",
    "beta_max": 1.0,
    "vae_epochs": 100,
    "beta_cycles": 4,
    "beta_cycle_ratio": 0.4,
}


def test_cyclical_beta_restarts_from_zero_once_per_cycle():
    values = [beta(e, **CYC) for e in range(100)]
    assert [e for e, v in enumerate(values) if v == 0.0] == [0, 25, 50, 75]


def test_cyclical_beta_rises_over_the_ratio_of_a_cycle_then_holds():
    # Period 25 epochs, rising over the first 0.4 * 25 = 10.
    assert [beta(e, **CYC) for e in (0, 5, 10, 24, 25, 30)] == pytest.approx(
        [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]
    )


def test_cyclical_number_of_cycles_follows_beta_cycles():
    values = [beta(e, **{**CYC, "beta_cycles": 2}) for e in range(100)]
    assert [e for e, v in enumerate(values) if v == 0.0] == [0, 50]


# -- sigmoid ----------------------------------------------------------------------------------

SIG = {"beta_schedule": "sigmoid", "beta_max": 2.0, "vae_epochs": 100, "beta_steepness": 0.2}


def test_sigmoid_beta_is_half_of_beta_max_at_the_default_midpoint_vae_epochs_over_2():
    assert beta(50, **SIG) == pytest.approx(1.0)


def test_sigmoid_beta_is_half_of_beta_max_at_a_given_midpoint():
    assert beta(20, **SIG, beta_midpoint=20.0) == pytest.approx(1.0)


def test_sigmoid_beta_increases_towards_beta_max():
    values = [beta(e, **SIG) for e in range(0, 100, 10)]
    assert values == sorted(values) and values[0] < 0.01 and values[-1] > 1.99


def test_sigmoid_steepness_is_the_logistic_slope():
    expected = 2.0 / (1 + math.exp(-0.2 * (60 - 50)))
    assert beta(60, **SIG) == pytest.approx(expected)


# -- the VAE stage ----------------------------------------------------------------------------


def small_vae_config(**overrides):
    return resolve(
        {
            "latent_dim": 4,
            "vae_encoder_hidden": 16,
            "vae_decoder_hidden": 16,
            "vae_epochs": 4,
            "vae_batch_size": 16,
            "beta_warmup_epochs": 3,
            "beta_max": 0.3,
            **overrides,
        }
    )


def test_vae_training_uses_the_scheduled_beta_each_epoch():
    cfg = small_vae_config()
    x = torch.rand(40, 8, generator=torch.Generator().manual_seed(0))
    _, history = vae.train(x, x[:10], cfg, torch.device("cpu"), lambda row: None)
    assert [row["beta"] for row in history] == [vae.beta_at(e, cfg) for e in range(4)]
    assert [row["beta"] for row in history] == pytest.approx([0.0, 0.1, 0.2, 0.3])


def trained_weights(epochs: int, **schedule) -> list[torch.Tensor]:
    cfg = small_vae_config(vae_epochs=epochs, **schedule)
    x = torch.rand(40, 8, generator=torch.Generator().manual_seed(0))
    model, _ = vae.train(x, x[:10], cfg, torch.device("cpu"), lambda row: None)
    return list(model.state_dict().values())


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(s, t) for s, t in zip(a, b))


def test_vae_loss_of_each_epoch_weights_the_kl_by_that_epochs_scheduled_beta():
    # Betas per epoch: 0.5 over 2 warm-up epochs -> 0, 0.25; 0.25 over 1 -> 0, 0.25;
    # 1.0 over 2 -> 0, 0.5. Training is deterministic, so two epochs give the same model
    # exactly when the losses used the same betas, whatever the history says.
    used = trained_weights(2, beta_max=0.5, beta_warmup_epochs=2)
    assert same(used, trained_weights(2, beta_max=0.25, beta_warmup_epochs=1))
    assert not same(used, trained_weights(2, beta_max=1.0, beta_warmup_epochs=2))
    # Epoch 0 used beta 0 in all three: one epoch gives the same model.
    assert same(
        trained_weights(1, beta_max=0.5, beta_warmup_epochs=2),
        trained_weights(1, beta_max=1.0, beta_warmup_epochs=2),
    )


def test_vae_training_reports_every_epoch_to_progress():
    cfg = small_vae_config()
    seen = []
    x = torch.rand(40, 8, generator=torch.Generator().manual_seed(0))
    vae.train(x, x[:10], cfg, torch.device("cpu"), seen.append)
    assert [row["epoch"] for row in seen] == [0, 1, 2, 3]
    assert all(row["stage"] == "vae" and math.isfinite(row["loss"]) for row in seen)


def test_vae_losses_sum_over_dims_and_average_over_the_batch():
    torch.manual_seed(0)
    model = vae.BetaVAE(3, 2, 5, 5)
    # Zero weights: mu = logvar = 0 (KL 0); the decoder outputs 0, so L1 = sum |x|.
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    recon, kl = vae.losses(model, x, "l1")
    assert recon.item() == pytest.approx((6 + 1) / 2)
    assert kl.item() == pytest.approx(0.0)
    recon2, _ = vae.losses(model, x, "l2")
    assert recon2.item() == pytest.approx((14 + 1) / 2)


def test_vae_kl_is_the_closed_form_kl_of_the_encoders_gaussian_from_the_standard_normal():
    model = vae.BetaVAE(3, 2, 5, 5)
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    # Every row encodes to mu = (1, -2), sigma^2 = (4, 0.25).
    model.mu.bias.data = torch.tensor([1.0, -2.0])
    model.logvar.bias.data = torch.log(torch.tensor([4.0, 0.25]))
    _, kl = vae.losses(model, torch.rand(6, 3), "l1")
    # KL = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2) (Kingma and Welling 2014, App. B):
    # 1/2 (1 + 4 - 1 - log 4) + 1/2 (4 + 0.25 - 1 - log 0.25) = 3.625.
    assert kl.item() == pytest.approx(3.625, rel=1e-6)
    q = torch.distributions.Normal(torch.tensor([1.0, -2.0]), torch.tensor([2.0, 0.5]))
    p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    assert kl.item() == pytest.approx(torch.distributions.kl_divergence(q, p).sum().item())


def test_minmax_scales_training_features_to_the_unit_range():
    x = torch.tensor([[0.0, 10.0], [2.0, 30.0], [1.0, 20.0]])
    scaled = vae.MinMax.fit(x)(x)
    assert scaled.min(0).values.tolist() == [0.0, 0.0]
    assert scaled.max(0).values.tolist() == [1.0, 1.0]


def test_minmax_maps_a_dimension_constant_over_training_to_zero_on_every_row():
    # Column 1 is a dead ReLU channel in training; a val/test row has 0.01 there.
    train = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    held_out = torch.tensor([[1.0, 0.01], [0.5, 0.0]])
    scaler = vae.MinMax.fit(train)
    assert scaler(train)[:, 1].tolist() == [0.0, 0.0, 0.0]
    assert scaler(held_out).tolist() == [[0.5, 0.0], [0.25, 0.0]]


def test_minmax_clips_held_out_values_outside_the_training_range_to_zero_and_one():
    scaler = vae.MinMax.fit(torch.tensor([[0.0], [10.0]]))
    assert scaler(torch.tensor([[-5.0], [5.0], [25.0]])).flatten().tolist() == [0.0, 0.5, 1.0]


def test_features_are_scaled_with_the_range_of_the_train_split_only():
    features = {
        "train": {"x": torch.tensor([[0.0], [2.0]]), "y": torch.tensor([0, 1])},
        "val": {"x": torch.tensor([[1.0], [4.0]]), "y": torch.tensor([0, 1])},
        "test": {"x": torch.tensor([[-2.0], [0.5]]), "y": torch.tensor([1, 0])},
    }
    scaled = vae.scale_features(features)
    # Fitted on all three splits (range -2..4) train would be [1/3, 2/3].
    assert scaled["train"][0].flatten().tolist() == [0.0, 1.0]
    assert scaled["val"][0].flatten().tolist() == [0.5, 1.0]
    assert scaled["test"][0].flatten().tolist() == [0.0, 0.25]
    assert all(torch.equal(scaled[s][1], features[s]["y"]) for s in features)


def test_reparameterize_draws_z_with_mean_mu_and_standard_deviation_exp_half_logvar():
    mu = torch.tensor([1.0, -2.0]).expand(20000, 2)
    logvar = torch.log(torch.tensor([4.0, 0.25])).expand(20000, 2)
    z = vae.reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert z.mean(0).tolist() == pytest.approx([1.0, -2.0], abs=0.03)
    assert z.std(0).tolist() == pytest.approx([2.0, 0.5], rel=0.02)
