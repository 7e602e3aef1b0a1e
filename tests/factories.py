from __future__ import annotations

import factory

from agentdeck.accounts.models import User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    id = factory.Faker("uuid4")
    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    role = User.Role.USER


class StaffFactory(UserFactory):
    role = User.Role.STAFF
