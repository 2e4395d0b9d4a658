"""fsvae.classifier: stage 3 (paper Sec. 3.3) and the ablations' defining properties.

The ablations are compared on a skewed toy problem built here: 4 Gaussian classes in 8
dimensions, 300 training rows for each majority class (a, b) and 6 for each minority class
(c, d); validation and test sets balanced (100 per class).
"""

from __future__ import annotations

import pytest
import torch

from fsvae import classifier, metrics
from fsvae.classifier import Inputs, cb_weights
from fsvae.config import resolve
from fsvae.vae import BetaVAE

CLASSES = ["a", "b", "c", "d"]
MINORITY = [2, 3]
CPU = torch.device("cpu")


def toy_features(
    seed: int = 0, n_major: int = 300, n_minor: int = 6, n_eval: int = 100, dim: int = 8
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(4, dim, generator=g) * 1.5  # toy_means() draws the same

    def draw(sizes):
        y = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
        return means[y] + torch.randn(len(y), dim, generator=g), y

    return {
        "train": draw([n_major, n_major, n_minor, n_minor]),
        "val": draw([n_eval] * 4),
        "test": draw([n_eval] * 4),
    }


def toy_means(seed: int = 0, dim: int = 8) -> torch.Tensor:
    """The class means toy_features(seed) draws first."""
    return torch.randn(4, dim, generator=torch.Generator().manual_seed(seed)) * 1.5


@pytest.fixture(scope="module")
def toy():
    return toy_features()


def train(feats, vae=None, **overrides):
    """(predictions, history) of classifier.train; train_with_head() also returns the head."""
    return train_with_head(feats, vae, **overrides)[:2]


def train_with_head(feats, vae=None, **overrides):
    cfg = resolve({"classifier_epochs": 5, "classifier_batch_size": 32, **overrides})
    return classifier.train(feats, MINORITY, CLASSES, cfg, vae, CPU, lambda row: None)


def scores_on_test(feats, preds) -> dict:
    return metrics.compute(feats["test"][1], preds["test"], MINORITY, CLASSES)[0]


def minority_predictions(preds) -> int:
    return int(torch.isin(preds["test"], torch.tensor(MINORITY)).sum())


def small_vae(x_dim: int = 8, latent: int = 3) -> BetaVAE:
    torch.manual_seed(0)
    return BetaVAE(x_dim, latent, 16, 16).eval()


# -- classifier inputs per method -------------------------------------------------------------


def test_vae_train_rows_draw_a_fresh_z_on_every_call():
    x = torch.rand(20, 8)
    inputs = Inputs(
        "vae", small_vae(), resolve({"latent_dim": 3}), torch.Generator().manual_seed(0)
    )
    first, second = inputs.train_rows(x), inputs.train_rows(x)
    assert first.shape == (20, 8 + 3)
    assert torch.equal(first[:, :8], x) and torch.equal(second[:, :8], x)
    assert not torch.allclose(first[:, 8:], second[:, 8:])


def test_vae_eval_rows_with_z_test_mean_are_x_and_mu_every_time():
    x = torch.rand(20, 8)
    model = small_vae()
    inputs = Inputs(
        "vae", model, resolve({"latent_dim": 3, "z_test": "mean"}), torch.Generator().manual_seed(0)
    )
    rows = inputs.eval_rows(x)
    assert torch.equal(rows, inputs.eval_rows(x))
    assert torch.allclose(rows, torch.cat([x, model.encode(x)[0]], 1))


def test_vae_eval_rows_with_z_test_sample_are_one_seeded_draw_not_the_mean():
    x = torch.rand(20, 8)
    model = small_vae()
    inputs = Inputs(
        "vae",
        model,
        resolve({"latent_dim": 3, "z_test": "sample"}),
        torch.Generator().manual_seed(0),
    )
    rows = inputs.eval_rows(x)
    assert torch.equal(rows, inputs.eval_rows(x))
    assert not torch.allclose(rows[:, 8:], model.encode(x)[0])


def test_vae_mean_train_rows_are_x_and_mu_without_noise():
    x = torch.rand(20, 8)
    model = small_vae()
    inputs = Inputs(
        "vae_mean",
        model,
        resolve({"method": "vae_mean", "latent_dim": 3}),
        torch.Generator().manual_seed(0),
    )
    rows = inputs.train_rows(x)
    assert torch.equal(rows, inputs.train_rows(x))
    assert torch.allclose(rows, torch.cat([x, model.encode(x)[0]], 1))


def test_noise_train_rows_add_fresh_gaussian_noise_of_noise_std_to_x():
    x = torch.rand(4000, 8)
    inputs = Inputs(
        "noise",
        None,
        resolve({"method": "noise", "noise_std": 0.3}),
        torch.Generator().manual_seed(0),
    )
    first, second = inputs.train_rows(x), inputs.train_rows(x)
    noise = first[:, 8:] - x
    assert first.shape == (4000, 16) and torch.equal(first[:, :8], x)
    assert noise.mean().item() == pytest.approx(0.0, abs=0.01)
    assert noise.std().item() == pytest.approx(0.3, rel=0.03)
    assert not torch.equal(first, second)


def test_noise_eval_rows_use_x_itself_for_the_noisy_copy():
    x = torch.rand(10, 8)
    inputs = Inputs("noise", None, resolve({"method": "noise"}), torch.Generator())
    assert torch.equal(inputs.eval_rows(x), torch.cat([x, x], 1))


@pytest.mark.parametrize("method", ["crt", "logit_adjust", "balanced_softmax", "cb_loss"])
def test_x_only_methods_see_x_alone(method):
    x = torch.rand(10, 8)
    inputs = Inputs(method, None, resolve({"method": method}), torch.Generator())
    assert inputs.dim(8) == 8
    assert torch.equal(inputs.train_rows(x), x) and torch.equal(inputs.eval_rows(x), x)


# -- class-balanced weights -------------------------------------------------------------------


def test_cb_weights_follow_the_effective_number_formula_normalised_to_class_count():
    counts = torch.tensor([100.0, 10.0, 1.0])
    b = 0.99
    raw = [(1 - b) / (1 - b**n) for n in (100, 10, 1)]
    expected = [3 * w / sum(raw) for w in raw]
    assert cb_weights(counts, b).tolist() == pytest.approx(expected, rel=1e-6)


def test_cb_weights_sum_to_the_number_of_classes():
    assert cb_weights(torch.tensor([300.0, 300.0, 6.0, 6.0]), 0.9999).sum().item() == (
        pytest.approx(4.0)
    )


def test_cb_weights_are_larger_for_rarer_classes():
    w = cb_weights(torch.tensor([500.0, 50.0, 5.0]), 0.9999).tolist()
    assert w[0] < w[1] < w[2]


def test_cb_weight_of_a_class_with_no_row_is_zero():
    w = cb_weights(torch.tensor([10.0, 0.0, 5.0]), 0.999)
    assert w[1].item() == 0.0 and w.sum().item() == pytest.approx(2.0)


# -- what each ablation does to the predictions -----------------------------------------------


def test_balanced_softmax_raises_minority_recall_over_plain_cross_entropy(toy):
    plain, _ = train(toy, method="crt", sampling_factor=1)
    balanced, _ = train(toy, method="balanced_softmax")
    assert (
        scores_on_test(toy, balanced)["acc_minority"]
        > scores_on_test(toy, plain)["acc_minority"] + 0.1
    )


def test_class_balanced_loss_raises_minority_recall_over_plain_cross_entropy(toy):
    plain, _ = train(toy, method="crt", sampling_factor=1)
    weighted, _ = train(toy, method="cb_loss", cb_beta=0.9999)
    assert (
        scores_on_test(toy, weighted)["acc_minority"]
        > scores_on_test(toy, plain)["acc_minority"] + 0.1
    )


def test_minority_oversampling_raises_minority_recall(toy):
    once, _ = train(toy, method="crt", sampling_factor=1)
    repeated, _ = train(toy, method="crt", sampling_factor=30)
    assert (
        scores_on_test(toy, repeated)["acc_minority"]
        > scores_on_test(toy, once)["acc_minority"] + 0.1
    )


def test_logit_adjustment_with_tau_predicts_minority_classes_more_often_than_tau_zero(toy):
    # One epoch: both runs train the same layer, only the test-time shift differs.
    none, _ = train(toy, method="logit_adjust", tau=0.0, classifier_epochs=1)
    adjusted, _ = train(toy, method="logit_adjust", tau=1.0, classifier_epochs=1)
    assert minority_predictions(adjusted) > minority_predictions(none)


def test_logit_adjustment_with_tau_zero_is_plain_cross_entropy(toy):
    none, _ = train(toy, method="logit_adjust", tau=0.0)
    plain, _ = train(toy, method="crt", sampling_factor=1)
    assert torch.equal(none["test"], plain["test"]) and torch.equal(none["val"], plain["val"])


@pytest.mark.parametrize("method", ["logit_adjust", "balanced_softmax", "cb_loss"])
def test_loss_based_ablations_ignore_sampling_factor(toy, method):
    once, _ = train(toy, method=method, sampling_factor=1)
    many, _ = train(toy, method=method, sampling_factor=30)
    assert torch.equal(once["test"], many["test"])


def test_vae_method_predicts_every_eval_row_nearly_as_well_as_the_bayes_rule(toy):
    preds, history = train(toy, small_vae(8, 3), method="vae", latent_dim=3, sampling_factor=5)
    assert preds["val"].shape == (400,) and preds["test"].shape == (400,)
    # Equal priors and one isotropic covariance on the balanced test set: the Bayes rule is
    # the nearest true class mean (0.94 here). The VAE classifier, 6 rows per minority
    # class repeated x5, gets within 0.1 of it (0.89 measured); chance is 0.25.
    x, y = toy["test"]
    bayes = (torch.cdist(x, toy_means()).argmin(1) == y).float().mean().item()
    assert bayes - 0.1 <= scores_on_test(toy, preds)["acc"] <= bayes + 0.02


def test_returned_predictions_are_from_the_epoch_with_best_validation_acc(toy):
    preds, history = train(toy, method="crt", sampling_factor=3, classifier_lr=0.5)
    epochs = [row for row in history if "epoch" in row]
    best = max(epochs, key=lambda row: row["val_acc"])
    val = metrics.compute(toy["val"][1], preds["val"], MINORITY, CLASSES)[0]
    assert val["acc"] == best["val_acc"]
    assert history[-1] == {"stage": "classifier", "best_epoch": best["epoch"]}


def test_same_seed_gives_the_same_predictions(toy):
    a, _ = train(toy, method="noise", seed=4)
    b, _ = train(toy, method="noise", seed=4)
    assert torch.equal(a["test"], b["test"])


@pytest.mark.parametrize("method", ["crt", "logit_adjust", "vae"])
def test_returned_head_gives_the_returned_test_predictions(toy, method):
    # logit_adjust: the head shifts its logits by -tau*log(prior), as the trial predicted.
    vae = small_vae(8, 3) if method == "vae" else None
    keys = {"method": method, "latent_dim": 3, "tau": 1.0}
    preds, _, head = train_with_head(toy, vae, **keys)
    rows = Inputs(method, vae, resolve(keys), None).eval_rows(toy["test"][0])
    with torch.no_grad():
        assert torch.equal(head(rows).argmax(1), preds["test"])
    if method == "logit_adjust":
        assert head.shift.abs().sum() > 0
