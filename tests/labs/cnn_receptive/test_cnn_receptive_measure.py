"""The exercises' measurements without a context: each returns a frozen dataclass whose
numbers and conditions (the ones its claims and checks record) a test reads directly; and
a record on a real recorder, where the check reads the outcome of the claim it shares."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import torch
from labrunner.labs.cnn_receptive import alexnet_fields, assignment_fields, gradient_check, image_boxes, zoo
from labrunner.labs.cnn_receptive.erf import measure_effective_fields
from labrunner.labs.cnn_receptive.networks import ASSIGNMENT_ANSWER, assignment_network, build_model
from torch import nn

import labrunner
from labrunner.testing import torch_threads

#: conv 3x3, max-pool 2x2 stride 2, conv 3x3 at input 16: (n, j, r, centre box, 1-based).
TINY_ANSWER = {"conv1": (14, 1, 3, (7, 9)), "pool1": (7, 2, 4, (7, 10)), "conv2": (5, 2, 8, (5, 12))}


def tiny_stack(first_kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 1, first_kernel), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3))


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tables():
    """Exercises 1 and 2 on the assignment's network and AlexNet (weights on the meta device)."""
    torch.manual_seed(0)
    a = assignment_fields.measure_assignment_fields(assignment_network())
    x = alexnet_fields.measure_alexnet_fields(build_model("alexnet", meta=True), 224)
    return a, x


def test_a_small_conv_stack_has_its_known_receptive_fields():
    m = assignment_fields.measure_assignment_fields(tiny_stack(), TINY_ANSWER, size=16)
    assert m.found == TINY_ANSWER and m.matches_worked_answer
    assert [f.rf[0] for f in m.layers] == [3, 4, 8] and [f.jump[0] for f in m.layers] == [1, 2, 2]
    # pool1's box is 4 pixels wide: its centre (8.5, 1-based) is not conv1's (8)
    assert m.inside_image and not m.concentric
    wrong = assignment_fields.measure_assignment_fields(tiny_stack(5), TINY_ANSWER, size=16)
    assert not wrong.matches_worked_answer and wrong.found["conv1"] == (12, 1, 5, (6, 10))


def test_the_assignment_network_matches_the_worked_answer(tables):
    m, _ = tables
    assert m.found == ASSIGNMENT_ANSWER and m.matches_worked_answer and m.concentric and m.inside_image
    values = assignment_fields.answer_values(m)
    assert values["n_in"] == 227 and values["centre_pixel"] == 114 and values["conv2"]["r"] == 51
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.table = ()  # type: ignore[misc]


def test_alexnet_at_224_and_at_the_smallest_input_it_allows(tables):
    _, m = tables
    assert m.final.rf == (195, 195) and m.rf_matches_published and not m.rf_exceeds_image
    assert m.map_sizes == m.assignment_sizes == [55, 27, 27] and m.maps_match_assignment
    assert m.units == 36 and m.units_inside == 0  # every box of the last layer reaches the padding
    assert m.centre == ((0, 192), (0, 192)) and m.corner_box == ((-66, 128), (-66, 128))
    assert alexnet_fields.answer_values(m)["border_px"] == 129
    small = alexnet_fields.measure_alexnet_fields(build_model("alexnet", meta=True), 95)
    assert small.final.size == (2, 2) and small.rf_exceeds_image and small.size == 95


def test_box_matches_finds_the_layers_whose_computed_box_is_wrong():
    right = assignment_fields.measure_assignment_fields(tiny_stack(), TINY_ANSWER, size=16)
    rows, bad = gradient_check.box_matches(tiny_stack(), right.table, (16, 16))
    assert bad == [] and [r["gradient box"] for r in rows] == ["7..9", "7..10", "5..12"]
    other = assignment_fields.measure_assignment_fields(tiny_stack(5), TINY_ANSWER, size=16)
    rows, bad = gradient_check.box_matches(tiny_stack(), other.table, (16, 16))
    assert bad == ["0", "1", "2"] and rows[0]["equal"] == "NO"


def test_the_exact_part_of_exercise_3(tables):
    a, x = tables
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    m = gradient_check.measure_gradient_check(assignment_network(), a.table, build_model("alexnet", meta=True),
                                              x.table, gen)  # fmt: skip
    assert m.boxes_match and m.layers_verified == 3 + len(x.table) - 1
    assert m.pool_count == m.conv1_rf**2 == 121 < m.pool_area == 361  # max-pooling: one conv1 unit
    assert m.probe_exact and m.linear_exact and 0 < m.dead < 1
    # average pooling with the ReLU: more than one conv1 field, never more than the box
    assert len(m.coverage) == 16 and all(121 < c <= 361 for c in m.coverage) and m.holes > 0
    assert dataclasses.replace(m, coverage=(361, 300, 361)).holes == 1  # a whole field is no hole
    assert [r["layer"] for r in m.rows_a] == list(ASSIGNMENT_ANSWER)


def test_the_boxes_on_the_photo(tables):
    a, x = tables
    m = image_boxes.measure_image_boxes(a.table, x.table)
    assert m.assignment.size == 227 and m.alexnet.size == 224 and m.assignment.image.shape == (227, 227, 3)
    assert m.assignment.corner is None and m.alexnet.corner == x.corner_box
    assert image_boxes.answer_values(m, {})["centre_px"] == 193


def test_a_model_of_the_zoo_is_verified_on_an_input_holding_its_whole_box():
    m = zoo.measure_zoo(["alexnet", "alexnet"], verify_all_layers=True)
    (alexnet,) = m.models  # AlexNet once, first
    assert alexnet.size == 256 and alexnet.whole_box_verified and alexnet.published == 195
    assert alexnet.bad == () and alexnet.checked > 1 and m.mismatches == [] and m.survey is None
    assert alexnet.row["equal"] == "yes" and m.results[0]["r"] == 195 and not alexnet.exceeds_image
    assert zoo.answer_values(m)["widest"]["name"] == "alexnet"


class _ZooRecord(labrunner.Lab):
    """Records a measured zoo in which one layer's gradient box differed."""

    name = "zoo_record"
    title = "zoo record"

    @dataclass(frozen=True)
    class Config:
        pass

    def run(self, ctx: labrunner.LabContext) -> None:
        measured = zoo.measure_zoo(["alexnet"])
        broken = dataclasses.replace(measured.models[0], bad=("features.12",))
        with ctx.exercise("5. More networks") as ex:
            zoo.record_zoo(ex, dataclasses.replace(measured, models=(broken,)))


def test_the_check_of_every_model_reads_its_claim(run_lab):
    result = run_lab(_ZooRecord())
    (ex,) = result.exercises
    claim = {c.name: c for c in ex.claims}["computed_equals_gradient_all_models"]
    check = {c.name: c for c in ex.checks}["computed_equals_gradient_all_models"]
    assert not claim.holds and not check.passed
    assert check.actual == ["alexnet:features.12"] and check.expected == [] and check.points == 3
    assert "alexnet:features.12" in claim.evidence


@pytest.mark.slow
def test_the_effective_fields_lie_inside_their_boxes():
    torch.manual_seed(0)
    m = measure_effective_fields(4, 2, torch.Generator().manual_seed(0), seed=0)
    assert [f.input_px for f in m.fields] == [256, 464] and [s["network"] for s in m.stats] == [
        "alexnet",
        "resnet18",
    ]
    assert m.mass_inside_box and abs(m.inside - 1) <= 1e-9
    for f, s in zip(m.fields, m.stats, strict=True):
        assert f.heat.shape == (f.input_px, f.input_px) and 0 < s["width"] < s["uniform_width"]
    diff = m.share_difference
    assert diff["lo"] <= diff["value"] <= diff["hi"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.stats = ()  # type: ignore[misc]
