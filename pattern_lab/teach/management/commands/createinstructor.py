"""python manage.py createinstructor NAME: an instructor account.

The password comes from a prompt, or from PATTERN_LAB_PASSWORD for scripts."""

import getpass
import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from pattern_lab.teach.roles import GROUP


class Command(BaseCommand):
    help = "Create an instructor (or make an existing user one). Password from a prompt or PATTERN_LAB_PASSWORD."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **opts):
        name = name.strip()
        if not name or len(name) > 150:
            raise CommandError("give a user name of 1 to 150 characters")
        password = os.environ.get("PATTERN_LAB_PASSWORD")
        if password is None:
            password = getpass.getpass(f"Password for {name}: ")
            if password != getpass.getpass("Again: "):
                raise CommandError("the passwords differ")
        User = get_user_model()
        user = User.objects.filter(username=name).first() or User(username=name)
        try:
            validate_password(password, user)
        except ValidationError as err:
            raise CommandError(" ".join(err.messages)) from None
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get_or_create(name=GROUP)[0])
        self.stdout.write(self.style.SUCCESS(f"{name} is an instructor; log in at /accounts/login/"))
