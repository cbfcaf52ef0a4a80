"""Public links: their options (prompt shown or not, expiry, listed), creating, counting views,
revoking, and the list of a person's links. The token is the only access check of a link."""

from datetime import timedelta

from django import forms
from django.db.models import F, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone

from studio.models import Image, Share

EXPIRY_CHOICES = [("never", "Never"), ("1", "1 day"), ("7", "7 days"), ("30", "30 days")]


class LinkOptions(forms.Form):
    include_prompt = forms.BooleanField(required=False, label="Show the prompt and settings")
    expires = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False, label="Link expires")
    listed = forms.BooleanField(required=False, label="Listed: search engines may index it")

    def clean_expires(self):
        # Left out (an older page) means the form's default, never; anything else unknown is an error.
        return self.cleaned_data["expires"] or "never"


def live():
    return Q(revoked=False) & (Q(expires__isnull=True) | Q(expires__gt=timezone.now()))


def create_link(user, job, options, image=None):
    """A new public link to `job` (or one of its images) with the chosen options."""
    days = options["expires"]
    expires = None if days == "never" else timezone.now() + timedelta(days=int(days))
    return Share.objects.create(job=job, image=image, created_by=user, expires=expires,
                                include_prompt=options["include_prompt"], listed=options["listed"])


def live_link_or_404(token):
    """The share for a token if it still works; 404 when revoked, expired or unknown."""
    return get_object_or_404(Share.objects.select_related("job").filter(live()), token=token)


def record_view(share):
    Share.objects.filter(pk=share.pk).update(views=F("views") + 1)


def revoke(share):
    Share.objects.filter(pk=share.pk).update(revoked=True)


def links_of(user):
    """Every link the person made, newest first, with what it points at."""
    return Share.objects.filter(created_by=user).select_related("job", "image").order_by("-id")


def shared_images(share):
    images = Image.objects.filter(job=share.job).order_by("index")
    return images.filter(pk=share.image_id) if share.image_id else images
