from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from studio.access import with_own_login
from studio.views import accounts, create, files, gallery, health, jobs, public, review, shares, spend, team

urlpatterns = [
    path("", accounts.home, name="home"),
    path("create/", create.index, name="create"),
    path("jobs/", jobs.index, name="jobs"),
    path("gallery/", gallery.index, name="gallery"),
    # create page fragments
    path("create/options/", create.options, name="create_options"),
    path("create/cost/", create.cost, name="create_cost"),
    path("create/upload/", create.upload, name="create_upload"),
    path("create/uploads/<int:pk>/chip/", create.upload_chip, name="create_upload_chip"),
    path("create/recent/", create.recent, name="create_recent"),
    path("create/palette/", create.palette, name="create_palette"),
    # jobs
    path("jobs/poll/", jobs.poll, name="jobs_poll"),
    path("jobs/<int:pk>/", jobs.card, name="job_card"),
    path("jobs/<int:pk>/cancel/", jobs.cancel, name="job_cancel"),
    path("jobs/<int:pk>/retry/", jobs.retry, name="job_retry"),
    path("jobs/<int:pk>/resolve/", jobs.resolve, name="job_resolve"),
    path("jobs/<int:pk>/delete/", jobs.delete, name="job_delete"),
    path("jobs/<int:pk>/download.zip", jobs.download_zip, name="job_download"),
    path("jobs/<int:pk>/share/", shares.create, name="job_share"),
    path("jobs/<int:pk>/team/", jobs.team, name="job_team"),
    path("shares/", shares.mine, name="shares"),
    path("shares/<str:token>/revoke/", shares.revoke, name="share_revoke"),
    # gallery
    path("gallery/<int:pk>/", gallery.detail, name="gallery_image"),
    path("gallery/<int:pk>/favourite/", gallery.favourite, name="gallery_favourite"),
    path("gallery/<int:pk>/reference/", gallery.reference, name="gallery_reference"),
    path("gallery/<int:pk>/delete/", gallery.delete, name="gallery_delete"),
    path("gallery/<int:pk>/share/", shares.create_for_image, name="image_share"),
    path("gallery/selection/download.zip", gallery.download_selection, name="gallery_download_selection"),
    path("gallery/selection/favourite/", gallery.favourite_selection, name="gallery_favourite_selection"),
    path("gallery/selection/delete/", gallery.delete_selection, name="gallery_delete_selection"),
    path("gallery/selection/team/", gallery.team_selection, name="gallery_team_selection"),
    # the team's shared jobs; a teammate reaches their images only through these
    path("team/", team.index, name="team"),
    path("team/images/<int:pk>/", team.detail, name="team_image"),
    path("team/images/<int:pk>/file/", team.image_file, name="team_image_file"),
    path("team/images/<int:pk>/thumb/", team.image_thumbnail, name="team_image_thumbnail"),
    path("team/jobs/<int:pk>/remix/", team.remix, name="team_remix"),
    # private media, owner (and staff) only
    path("files/images/<int:pk>/", files.image_original, name="image_file"),
    path("files/images/<int:pk>/thumb/", files.image_thumbnail, name="image_thumbnail"),
    path("files/uploads/<int:pk>/", files.upload_file, name="upload_file"),
    # public share links
    path("s/<str:token>/", shares.page, name="share_page"),
    path("s/<str:token>/<int:image_id>/<str:kind>/", shares.image, name="share_image"),
    path("spend/", spend.index, name="spend"),
    path("spend/badge/", spend.badge, name="spend_badge"),
    path("spend/export.csv", spend.export_csv, name="spend_export"),
    # cost review, staff only
    path("review/", review.index, name="review"),
    path("review/export.csv", review.export_csv, name="review_export"),
    path("review/jobs/", review.job_list, name="review_jobs"),
    path("review/jobs/<int:pk>/", review.job_detail, name="review_job"),
    path("review/system/", review.system, name="review_system"),
    path("public/uploads/<str:token>/", public.upload, name="public_upload"),
    path("healthz", health.healthz, name="healthz"),
    # The account pages we use, not include("django.contrib.auth.urls"): that also mounts
    # password reset, which Django marks @login_not_required, and the studio sends no mail.
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(),
         name="password_change_done"),
    path("admin/", with_own_login(admin.site.urls)),
]

# The simulator takes any bearer key and renders images on demand: mounted only when it is on.
if settings.STUDIO_SIMULATOR:
    urlpatterns.append(path("sim/", include("studio.simulator.urls")))
