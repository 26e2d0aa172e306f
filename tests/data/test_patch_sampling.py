import numpy as np
import pytest

from aerialseg.data.classes import IGNORE_INDEX
from aerialseg.data.patch_sampling import (
    PatchCentres,
    car_centres,
    extract_patches,
    sample_centre_patches,
    sample_patch_centres,
)

P = 65
CAR = 4
CARS = [(10, 12), (30, 90), (70, 40), (100, 110)]  # top-left corners of 5x9 cars


def scene(seed=0, h=120, w=130):
    """Labels: four class regions, a clutter block, an ignore block and four 5x9 cars."""
    lab = np.zeros((h, w), np.int64)
    lab[: h // 2, w // 2:] = 1
    lab[h // 2:, : w // 2] = 2
    lab[h // 2:, w // 2:] = 3
    lab[50:60, 0:20] = 5  # clutter
    lab[0:8, 60:80] = IGNORE_INDEX
    for r, c in CARS:
        lab[r:r + 5, c:c + 9] = CAR
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(3, h, w)).astype(np.float32)
    img[0] = lab == CAR  # band 0 marks car pixels exactly
    return img, lab


def sample(rng_seed=0, **kw):
    img, lab = scene()
    args = dict(num_classes=6, classes=[0, 1, 2, 3, 4], rng=np.random.default_rng(rng_seed))
    args.update(kw)
    return sample_centre_patches([img], [lab], **args)


def test_balanced_and_match_car():
    x, y = sample()
    assert x.shape == (5 * 4 * 9, 3, P, P) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y, minlength=6).tolist() == [36, 36, 36, 36, 36, 0]


def test_car_patches_centred_on_cars_even_rotated():
    img, lab = scene()
    c = sample_patch_centres([lab], num_classes=6, classes=[0, 1, 2, 3, 4],
                             rng=np.random.default_rng(0))
    car = c.take(np.flatnonzero(c.label == CAR))
    centres = {(r + 2, q + 4) for r, q in CARS}  # centroids of the 5x9 cars
    assert set(zip(car.row.tolist(), car.col.tolist(), strict=True)) == centres
    assert len(car) == 4 * 9 and np.count_nonzero(car.angle == 0) == 4
    x = extract_patches([img], car)
    assert np.all(x[:, 0, P // 2, P // 2] == 1.0)  # centre pixel is a car pixel, rotated too
    unrot = x[car.angle == 0]
    assert np.all(unrot[:, 0, 30:35, 28:37] == 1.0)  # the whole car, centred


def test_centres_have_their_label_and_ignore_clutter_never_sampled():
    img, lab = scene()
    lab2 = lab.copy()
    lab2[:, :40] = IGNORE_INDEX
    c = sample_patch_centres([lab2], num_classes=6, classes=[0, 1, 2, 3, 4],
                             samples_per_class=50, rng=np.random.default_rng(1))
    assert np.array_equal(lab2[c.row, c.col], c.label)
    assert not np.isin(c.label, [5, IGNORE_INDEX]).any()
    assert np.bincount(c.label, minlength=5)[:5].tolist() == [50] * 5


def test_deterministic_given_rng():
    x1, y1 = sample(3)
    x2, y2 = sample(3)
    x3, _ = sample(4)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_int_samples_per_class_subsamples_or_tops_up_cars():
    for n in (10, 50):
        _, y = sample(samples_per_class=n)
        assert np.bincount(y, minlength=5)[:5].tolist() == [n] * 5


def test_rotation_direction_and_no_blank_corners():
    img, lab = scene()
    c = PatchCentres(np.array([0, 0]), np.array([12, 12]), np.array([16, 16]),
                     np.array([0.0, 90.0]), np.array([CAR, CAR]))
    p0, p90 = extract_patches([img], c, patch_size=P)
    np.testing.assert_allclose(p90, np.rot90(p0, k=1, axes=(1, 2)), atol=1e-5)
    ones = np.ones((2, 40, 50), np.float32)
    c = PatchCentres(np.zeros(3, int), np.array([0, 20, 39]), np.array([0, 25, 49]),
                     np.array([33.0, 45.0, 300.0]), np.zeros(3, int))
    np.testing.assert_allclose(extract_patches([ones], c, patch_size=P), 1.0, atol=1e-6)


def test_reflect_border_matches_np_pad():
    img, _ = scene()
    c = PatchCentres(np.array([0]), np.array([3]), np.array([120]), np.zeros(1), np.zeros(1))
    padded = np.pad(img, ((0, 0), (32, 32), (32, 32)), mode="reflect")
    np.testing.assert_array_equal(extract_patches([img], c)[0], padded[:, 3:3 + P, 120:120 + P])


def test_valid_border_keeps_centres_inside():
    c = sample_patch_centres([scene()[1]], num_classes=6, classes=[0, 1, 2, 3, 4],
                             samples_per_class=30, rng=np.random.default_rng(0), border="valid")
    assert c.row.min() >= 32 and c.row.max() < 120 - 32
    assert c.col.min() >= 32 and c.col.max() < 130 - 32
    assert set(c.label[c.label == CAR]) <= {CAR}


def test_car_centres_concave_component():
    lab = np.zeros((20, 20), np.int64)
    lab[2:5, 2:9] = CAR  # rectangle: centroid (3, 5)
    lab[10:18, 10] = CAR  # L shape: centroid off the component
    lab[17, 10:18] = CAR
    cc = car_centres(lab, CAR)
    assert cc.tolist()[0] == [3, 5]
    assert lab[cc[1, 0], cc[1, 1]] == CAR and len(cc) == 2


def test_missing_class_warns_and_no_car_raises():
    img, lab = scene()
    with pytest.warns(UserWarning, match="class 3"):
        x, y = sample_centre_patches([img], [np.where(lab == 3, 2, lab)], num_classes=6,
                                     classes=[0, 1, 2, 3, 4], rng=np.random.default_rng(0))
    assert 3 not in y
    with pytest.raises(ValueError, match="no car"):
        sample_centre_patches([img], [np.where(lab == CAR, 0, lab)], num_classes=6,
                              classes=[0, 1, 2, 3, 4], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="matching labels"):
        sample_centre_patches([img[:, :10]], [lab], num_classes=6, classes=[0],
                              samples_per_class=1, rng=np.random.default_rng(0))
