"""The IoU tracker on hand-made box sequences."""

import numpy as np

from parsing.tracker import IouTracker, iou_matrix


def test_iou_matrix_known_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_ids_stay_with_moving_people_and_new_people_get_new_ids():
    tracker = IouTracker()
    assert tracker.update(np.array([[0, 0, 10, 20], [50, 0, 60, 20]])) == [0, 1]
    # listed in the other order and moved a little: ids follow the boxes
    assert tracker.update(np.array([[52, 0, 62, 20], [1, 0, 11, 20]])) == [1, 0]
    assert tracker.update(np.array([[1, 0, 11, 20], [100, 0, 110, 20]])) == [0, 2]


def test_hungarian_beats_greedy_on_crossing_people():
    tracker = IouTracker(min_iou=0.1)
    tracker.update(np.array([[0, 0, 10, 10], [8, 0, 18, 10]]))
    # box A overlaps both tracks most with track 1; greedy would give it 1 and leave B unmatched
    ids = tracker.update(np.array([[6, 0, 16, 10], [11, 0, 21, 10]]))
    assert ids == [0, 1]


def test_tracks_expire_after_max_age():
    tracker = IouTracker(max_age=2)
    assert tracker.update(np.array([[0, 0, 10, 10]])) == [0]
    for _ in range(3):
        tracker.update(np.zeros((0, 4)))
    assert tracker.update(np.array([[0, 0, 10, 10]])) == [1]
