"""Teams are Django groups. A job's owner shares it with their teams; a teammate may look at it,
download its images and remix it (as a job of their own), never change it.

A teammate sees a shared job only while both of them are in the team it was shared with, so
unsharing, or either person leaving the team, hides it at once: nothing is copied.
"""

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.shortcuts import get_object_or_404

from studio import media
from studio.models import Image, Job, TeamShare


def teams_of(user):
    return list(user.groups.order_by("name"))


def visible_to(user, job_field="job_id", owner_field="owner_id"):
    """An Exists() for rows whose job is shared with a team that both `user` and the job's owner
    are in now. Works on Image (the defaults) and on Job (job_field="pk")."""
    team_ids = list(user.groups.values_list("pk", flat=True))
    shares = TeamShare.objects.filter(job_id=OuterRef(job_field), team_id__in=team_ids,
                                      team__user=OuterRef(owner_field))
    return Exists(shares)


def get_team_image_or_404(user, **lookup):
    """An image the user reaches through the team view; 404 for anything else, never 403."""
    images = Image.objects.filter(visible_to(user)).select_related("job", "owner")
    return get_object_or_404(images, **lookup)


def get_team_job_or_404(user, **lookup):
    return get_object_or_404(Job.objects.filter(visible_to(user, "pk")), **lookup)


class UnknownTeam(ValueError):
    """A team id that is not one of the person's teams."""


def set_teams(job, user, team_ids):
    """Share `job` with exactly these of `user`'s teams (none: unshare). Only the owner may."""
    mine = {team.pk: team for team in teams_of(user)}
    unknown = [pk for pk in team_ids if pk not in mine]
    if unknown or job.owner_id != user.pk:
        raise UnknownTeam("Choose among your own teams.")
    with transaction.atomic():
        TeamShare.objects.filter(job=job).exclude(team_id__in=team_ids).delete()
        for pk in team_ids:
            TeamShare.objects.get_or_create(job=job, team=mine[pk], defaults={"shared_by": user})


def share_with_all_teams(jobs, user):
    """Share each of the user's own `jobs` with every team the user is in."""
    team_ids = [team.pk for team in teams_of(user)]
    for job in jobs:
        set_teams(job, user, sorted(set(team_ids) | set(job_team_ids(job))))


def job_team_ids(job):
    return list(TeamShare.objects.filter(job=job).values_list("team_id", flat=True))


def copied_inputs(job, user):
    """The job's input images as new uploads of `user`, with their boxes: a teammate's remix
    must not depend on (or reach) the owner's files."""
    inputs = list(job.inputs.select_related("upload"))
    return [(media.copy_upload(found.upload, user), found.boxes) for found in inputs]
