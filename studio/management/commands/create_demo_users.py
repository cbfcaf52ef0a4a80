import secrets
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from studio.gateways import catalog
from studio.models import Price
from studio.settings import VAR_DIR

# anyfast and foxapi publish no price; the demo needs one to take jobs. An admin changes these
# (Admin → Prices) before real use. Same figures as apimart's published ones.
DEMO_PRICES = {
    "wan2.7-image-pro": Decimal("0.50"),
    "wan2.7-image": Decimal("0.20"),
    "doubao-seedream-4-5-251128": Decimal("0.25"),
}


class Command(BaseCommand):
    help = "Create a demo user and a staff user on first run, and print their logins once."

    def handle(self, *args, **options):
        self.set_demo_prices()
        users = get_user_model()
        if users.objects.filter(username__in=["demo", "admin"]).exists():
            self.stdout.write(f"Demo logins already exist (see {VAR_DIR / 'demo-logins.txt'}).")
            return
        lines = []
        for username, staff in (("demo", False), ("admin", True)):
            password = secrets.token_urlsafe(9)
            users.objects.create_user(
                username, f"{username}@example.invalid", password, is_staff=staff, is_superuser=staff
            )
            lines.append(f"  {username:6} / {password}" + ("   (staff)" if staff else ""))
        # Kept in var/ (git-ignored, owner-only) so a forgotten password can be looked up locally.
        path = VAR_DIR / "demo-logins.txt"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        self.stdout.write(self.style.SUCCESS("Demo logins (shown once; also in var/demo-logins.txt):"))
        self.stdout.write("\n".join(lines))

    def set_demo_prices(self):
        for found in catalog.OFFERS:
            if found.documented_price is None and found.model in DEMO_PRICES:
                _, created = Price.objects.get_or_create(
                    gateway=found.gateway,
                    model=found.model,
                    defaults={"unit_price": DEMO_PRICES[found.model]},
                )
                if created:
                    self.stdout.write(
                        f"Demo price for {found.model} on {found.gateway}: ¥{DEMO_PRICES[found.model]} "
                        "(change it in Admin → Prices)"
                    )
