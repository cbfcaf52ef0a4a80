"""The job card's view model: what the bar and its words say, and the poller's token."""

from datetime import UTC, datetime, timedelta

import pytest

from studio.models import Job
from studio.templatetags.job_cards import LATE, SOON, Card, Seen, parse_seen, rounded_up

NOW = datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC)


def job_at(status=Job.RUNNING, gateway="apimart", model="wan2.7-image", sent_ago=None, stored_images=None,
           **fields):
    """An unsaved job (a card reads, never writes), sent `sent_ago` seconds before NOW; with
    `stored_images` as the poller's query counts them."""
    if sent_ago is not None:
        fields["submitted"] = NOW - timedelta(seconds=sent_ago)
    fields.setdefault("created", NOW - timedelta(seconds=(sent_ago or 0) + 1))
    fields.setdefault("updated", NOW - timedelta(seconds=1))
    job = Job(pk=12, status=status, gateway=gateway, model=model, mode="text-to-image", n_requested=2,
              **fields)
    if stored_images is not None:
        job.stored_images = stored_images
    return job


def card_of(job):
    return Card(job, now=NOW)


def expected_in(seconds):
    return NOW + timedelta(seconds=seconds)


# --- the bar ------------------------------------------------------------------------------------


def test_the_bar_shows_the_gateways_progress_when_it_gives_one():
    found = card_of(job_at(progress=40, sent_ago=50, expected_result=expected_in(10)))
    assert found.percent == 40
    assert not found.percent_is_estimate


def test_without_progress_the_bar_counts_towards_the_expected_result():
    found = card_of(job_at(sent_ago=30, expected_result=expected_in(30)))
    assert found.percent == 50
    assert found.percent_is_estimate


def test_without_an_expected_result_the_gateways_estimate_is_counted_from_the_submit():
    found = card_of(job_at(sent_ago=15, estimated_seconds=60))
    assert found.percent == 25
    assert found.time_left == 45


def test_the_expected_result_wins_over_the_gateways_estimate():
    found = card_of(job_at(sent_ago=15, estimated_seconds=20, expected_result=expected_in(45)))
    assert found.percent == 25
    assert found.time_left == 45


def test_a_time_based_bar_never_claims_done():
    found = card_of(job_at(sent_ago=100, expected_result=expected_in(-40)))
    assert found.percent == 95


def test_nothing_known_gives_a_bar_that_only_says_working():
    found = card_of(job_at(sent_ago=30))
    assert found.percent is None
    assert found.time_left is None and found.left_text == ""


def test_a_sync_gateways_long_request_counts_towards_its_expected_result():
    found = card_of(job_at(status=Job.SUBMITTING, gateway="anyfast", sent_ago=10,
                           expected_result=expected_in(30)))
    assert found.percent == 25 and found.percent_is_estimate
    assert found.left_text == "about 30 s left"


def test_an_async_submit_and_a_queued_job_have_no_figure():
    assert card_of(job_at(status=Job.SUBMITTING, sent_ago=1, expected_result=expected_in(30))).percent is None
    assert card_of(job_at(status=Job.QUEUED)).percent is None
    assert card_of(job_at(status=Job.QUEUED)).left_text == ""


@pytest.mark.parametrize("status", [Job.DOWNLOADING, Job.SUCCEEDED, Job.PARTIAL])
def test_once_the_gateway_answered_the_bar_is_full(status):
    found = card_of(job_at(status=status, progress=60, sent_ago=30, expected_result=expected_in(30)))
    assert found.percent == 100
    assert found.time_left is None


# --- the words ------------------------------------------------------------------------------------


def test_it_says_about_how_long_is_left():
    assert card_of(job_at(progress=50, sent_ago=30, expected_result=expected_in(29))).left_text == (
        "about 30 s left")
    assert card_of(job_at(sent_ago=30, expected_result=expected_in(100))).left_text == "about 1 min 45 s left"


def test_never_about_0_s_left_at_33_percent():
    at_the_time = card_of(job_at(progress=33, sent_ago=60, estimated_seconds=60))
    just_before = card_of(job_at(progress=33, sent_ago=60, expected_result=expected_in(0.4)))
    for found in (at_the_time, just_before):
        assert found.time_left == LATE
        assert found.left_text == "taking longer than expected"


def test_progress_well_behind_the_clock_says_it_is_taking_longer():
    assert card_of(job_at(progress=20, sent_ago=50, expected_result=expected_in(10))).time_left == LATE
    assert card_of(job_at(progress=70, sent_ago=50, expected_result=expected_in(10))).time_left == 10


def test_just_past_the_expected_time_it_is_any_moment_now():
    found = card_of(job_at(sent_ago=62, expected_result=expected_in(-2)))
    assert found.time_left == SOON
    assert found.left_text == "any moment now"
    assert card_of(job_at(progress=90, sent_ago=62, expected_result=expected_in(-2))).time_left == SOON


def test_long_past_the_expected_time_it_is_taking_longer_than_expected():
    # the grace is a quarter of the expected 60 s: 15 s
    assert card_of(job_at(sent_ago=74, expected_result=expected_in(-14))).time_left == SOON
    assert card_of(job_at(sent_ago=76, expected_result=expected_in(-16))).time_left == LATE
    # and at least 10 s for a short job
    assert card_of(job_at(sent_ago=13, expected_result=expected_in(-9))).time_left == SOON
    assert card_of(job_at(sent_ago=15, expected_result=expected_in(-11))).time_left == LATE


def test_past_the_expected_time_with_little_progress_is_not_any_moment():
    assert card_of(job_at(progress=40, sent_ago=62, expected_result=expected_in(-2))).time_left == LATE


@pytest.mark.parametrize(("seconds", "said"), [
    (0.2, 5), (5, 5), (41, 45), (60, 60), (61, 75), (599, 600), (601, 660), (3601, 3660),
])
def test_time_left_is_rounded_up_never_to_0(seconds, said):
    assert rounded_up(seconds) == said


# --- the poller's token ---------------------------------------------------------------------------


def test_the_token_says_what_the_page_shows():
    found = card_of(job_at(progress=45, sent_ago=20, expected_result=expected_in(40), stored_images=0))
    assert found.seen == "12:2026-12-06T01:02:02.456789Z:0:running:45:40"
    nothing = card_of(job_at(status=Job.QUEUED, stored_images=0))
    assert nothing.seen == "12:2026-12-06T01:02:02.456789Z:0:queued:-:-"


def test_a_token_reads_back_as_it_was_written():
    for text in ("12:2026-12-06T01:02:02.456789Z:0:running:45:40",
                 "7:2026-12-06T01:02:02.000001Z:3:downloading:100:-",
                 "9:2026-01-31T23:59:59.999999Z:0:running:-:soon",
                 "9:2026-01-31T23:59:59.999999Z:0:submitting:95:late"):
        (seen,) = parse_seen([text]).values()
        assert str(seen) == text


def seen_of(card, **changes):
    parts = vars(parse_seen([card.seen])[card.job.pk]) | changes
    return Seen(**parts)


def test_the_same_token_means_nothing_to_send():
    found = card_of(job_at(progress=45, sent_ago=20, expected_result=expected_in(40), stored_images=0))
    assert found.change_since(seen_of(found)) is None


def test_a_running_jobs_new_progress_is_sent_alone():
    found = card_of(job_at(progress=45, sent_ago=20, stored_images=0))
    assert found.change_since(seen_of(found, updated="2026-12-06T01:01:58.000000Z", percent=30)) == "progress"


def test_the_clock_alone_sends_the_progress_part():
    found = card_of(job_at(sent_ago=20, expected_result=expected_in(40), stored_images=0))
    assert found.change_since(seen_of(found, percent=30, left=45)) == "progress"


def test_a_new_status_or_a_stored_image_sends_the_whole_card():
    found = card_of(job_at(status=Job.DOWNLOADING, stored_images=1))
    assert found.change_since(seen_of(found, status=Job.RUNNING)) == "card"
    assert found.change_since(seen_of(found, images=0)) == "card"


def test_any_other_write_to_a_job_that_is_not_running_sends_the_whole_card():
    found = card_of(job_at(status=Job.QUEUED, stored_images=0))
    assert found.change_since(seen_of(found, updated="2026-12-06T01:01:58.000000Z")) == "card"


def test_stopping_a_running_job_sends_the_whole_card():
    found = card_of(job_at(progress=45, stopped_by_user=True, stored_images=0))
    assert found.change_since(seen_of(found, updated="2026-12-06T01:01:58.000000Z")) == "card"


@pytest.mark.parametrize(("values", "said"), [
    (["12"], "Not a card token"),
    (["12:2026-12-06T01:02:02Z:0:running:45:40"], "Not a card token"),
    (["12:2026-12-06T01:02:02.456789Z:0:running:45:40 "], "Not a card token"),
    (["0:2026-12-06T01:02:02.456789Z:0:running:45:40"], "Not a card token"),
    (["12:2026-12-06T01:02:02.456789Z:0:running:45:0.5"], "Not a card token"),
    (["12:2026-13-06T01:02:02.456789Z:0:running:45:40"], "Not a time"),
    (["12:2026-12-06T01:02:02.456789Z:0:succeeded:45:40"], "Not the status of an active job"),
    (["12:2026-12-06T01:02:02.456789Z:0:running:101:40"], "Not a percentage"),
    (["12:2026-12-06T01:02:02.456789Z:0:running:45:40", "12:2026-12-06T01:02:02.456789Z:0:running:46:40"],
     "Two different tokens for card 12"),
    ([f"{n}:2026-12-06T01:02:02.456789Z:0:running:45:40" for n in range(1, 102)], "At most 100 cards"),
])
def test_anything_but_a_token_is_refused_in_plain_words(values, said):
    with pytest.raises(ValueError, match=said):
        parse_seen(values)


def test_the_same_token_twice_is_one_card():
    text = "12:2026-12-06T01:02:02.456789Z:0:running:45:40"
    assert list(parse_seen([text, text])) == [12]
