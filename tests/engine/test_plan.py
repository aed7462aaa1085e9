"""Insertion plans: angles, anchors, acquisition orders and doses of new tilts."""
import numpy as np
import pytest

from cryotiger_scipion.engine import InputError
from cryotiger_scipion.engine.commands.simulate import dose_symmetric_order
from cryotiger_scipion.engine.plan import gaps_of, make_input_tilts, make_plan


def angles_of(plan):
    return [round(o.angle, 4) for o in plan]


def test_uniform_add_one_per_gap():
    plan = make_plan(make_input_tilts([-6, -3, 0, 3, 6]), per_gap=1)
    assert angles_of(plan) == [-6, -4.5, -3, -1.5, 0, 1.5, 3, 4.5, 6]
    assert [o.synthetic for o in plan] == [False, True] * 4 + [False]
    assert plan[1].sources == [0, 1] and plan[1].weights == pytest.approx([0.5, 0.5])
    assert [o.index for o in plan] == list(range(9))


def test_three_per_gap_evenly_spaced():
    plan = make_plan(make_input_tilts([0, 4]), per_gap=3)
    assert angles_of(plan) == [0, 1, 2, 3, 4]
    assert [o.fraction for o in plan if o.synthetic] == pytest.approx([0.25, 0.5, 0.75])


def test_non_uniform_steps_and_unsorted_stack():
    # Stack order is not angle order; steps differ.
    plan = make_plan(make_input_tilts([2, -3, 0, 8]), per_gap=1)
    assert angles_of(plan) == [-3, -1.5, 0, 1, 2, 5, 8]
    s = [o for o in plan if o.synthetic]
    assert [o.sources for o in s] == [[1, 2], [2, 0], [0, 3]]


def test_excluded_views_are_not_anchors_but_stay_flagged():
    # view 3 (0-based 2, angle 0) excluded
    plan = make_plan(make_input_tilts([-6, -3, 0, 3, 6], excluded=[2]), per_gap=1)
    syn = [o for o in plan if o.synthetic]
    assert [o.sources for o in syn] == [[0, 1], [1, 3], [3, 4]]
    assert [o.angle for o in syn] == pytest.approx([-4.5, 0.0, 4.5])
    excluded = [o for o in plan if o.excluded]
    assert len(excluded) == 1 and excluded[0].input_index == 2 and not excluded[0].synthetic
    assert len(plan) == 5 + 3


def test_excluded_view_out_of_range():
    with pytest.raises(InputError, match="view 9 does not exist"):
        make_input_tilts([0, 3, 6], excluded=[8])


def test_dose_symmetric_orders_and_dose_rule():
    angles = np.arange(-9, 9.1, 3.0)          # 7 tilts
    order = dose_symmetric_order(angles)
    assert order[3] == 1                       # 0 degrees first
    doses = np.full(7, 2.0)
    tilts = make_input_tilts(angles, orders=order, doses=doses)
    # accumulated dose follows the acquisition order
    for t in tilts:
        assert t.accum_dose == pytest.approx(2.0 * (t.order - 1))
    plan = make_plan(tilts, per_gap=1)
    orders = [o.acquisition_order for o in plan]
    assert len(set(orders)) == len(orders)
    syn = [o for o in plan if o.synthetic]
    assert sorted(o.acquisition_order for o in syn) == list(range(8, 8 + 6))
    assert [o.acquisition_order for o in syn] == sorted(o.acquisition_order for o in syn)
    for o in syn:
        a, b = tilts[o.sources[0]], tilts[o.sources[1]]
        assert o.accum_dose == pytest.approx(0.5 * (a.accum_dose + b.accum_dose))
        assert o.dose == pytest.approx(2.0)


def test_restore_mode_drops_every_second_tilt():
    angles = np.arange(-8, 8.1, 2.0)           # 9 tilts
    plan = make_plan(make_input_tilts(angles), per_gap=1, mode="restore")
    assert angles_of(plan) == list(np.arange(-8, 8.1, 2.0))
    real = [o for o in plan if not o.synthetic]
    syn = [o for o in plan if o.synthetic]
    assert [o.input_index for o in real] == [0, 2, 4, 6, 8]
    assert [o.replaces for o in syn] == [1, 3, 5, 7]
    assert [o.sources for o in syn] == [[0, 2], [2, 4], [4, 6], [6, 8]]


def test_restore_mode_even_count_drops_trailing_tilt():
    plan = make_plan(make_input_tilts([0, 2, 4, 6]), per_gap=1, mode="restore")
    assert angles_of(plan) == [0, 2, 4]


def test_gaps_group_outputs():
    plan = make_plan(make_input_tilts([0, 4, 8]), per_gap=3)
    gaps = gaps_of(plan)
    assert [(g["a"], g["b"]) for g in gaps] == [(0, 1), (1, 2)]
    assert gaps[0]["outputs"] == [1, 2, 3]


def test_bad_plans():
    with pytest.raises(InputError, match="at least 1"):
        make_plan(make_input_tilts([0, 3]), per_gap=0)
    with pytest.raises(InputError, match="same angle"):
        make_plan(make_input_tilts([0, 3, 3]))
    with pytest.raises(InputError, match="usable"):
        make_plan(make_input_tilts([0, 3], excluded=[0]))
    with pytest.raises(InputError, match="unknown mode"):
        make_plan(make_input_tilts([0, 3]), mode="nope")
