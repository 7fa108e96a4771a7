"""Every move between survey request states, allowed and forbidden, made through the one transition function."""

from itertools import product

import pytest

from surveys.delivery.survey_requests import InvalidTransition, survey_request_transition
from surveys.models import TRANSITIONS, DailyCount, SurveyRequest
from surveys.reporting.counts import count_survey_request_recorded
from tests.factories import SurveyRequestFactory

S = SurveyRequest.Status
ALLOWED = {
    (S.SCHEDULED, S.SENDING), (S.SCHEDULED, S.CANCELLED), (S.SCHEDULED, S.SUPPRESSED), (S.SCHEDULED, S.INVALID),
    (S.SCHEDULED, S.SCHEDULED),
    (S.SENDING, S.SENT), (S.SENDING, S.INVALID), (S.SENDING, S.FAILED), (S.SENDING, S.AMBIGUOUS),
    (S.SENDING, S.SENDING), (S.SENDING, S.SCHEDULED), (S.SENDING, S.CANCELLED), (S.SENDING, S.SUPPRESSED),
    (S.FAILED, S.SCHEDULED), (S.INVALID, S.SCHEDULED), (S.AMBIGUOUS, S.SCHEDULED), (S.AMBIGUOUS, S.SENT),
}  # fmt: skip
EVERY_MOVE = list(product(S, S))


def test_the_table_names_every_status():
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize(("current", "to"), [move for move in EVERY_MOVE if move in ALLOWED])
def test_allowed_move_changes_the_row_and_its_count(db, current, to):
    survey_request = SurveyRequestFactory(status=current)
    count_survey_request_recorded(survey_request)
    survey_request_transition(survey_request, to=to)
    assert SurveyRequest.objects.get(pk=survey_request.pk).status == to
    old, new = (SurveyRequest.outcome_of(status, survey_request.decision) for status in (current, to))
    counts = dict(DailyCount.objects.values_list("kind", "count"))
    assert counts == ({old: 1} if old == new else {old: 0, new: 1})


@pytest.mark.parametrize(("current", "to"), [move for move in EVERY_MOVE if move not in ALLOWED])
def test_forbidden_move_raises_and_changes_nothing(db, current, to):
    survey_request = SurveyRequestFactory(status=current)
    with pytest.raises(InvalidTransition, match="not allowed"):
        survey_request_transition(survey_request, to=to)
    assert SurveyRequest.objects.get(pk=survey_request.pk).status == current


def test_a_move_from_a_status_the_row_no_longer_has_changes_nothing(db):
    survey_request = SurveyRequestFactory(status=S.SCHEDULED)
    SurveyRequest.objects.filter(pk=survey_request.pk).update(status=S.CANCELLED)
    with pytest.raises(InvalidTransition, match="no longer scheduled"):
        survey_request_transition(survey_request, to=S.SENDING)
    assert SurveyRequest.objects.get(pk=survey_request.pk).status == S.CANCELLED
