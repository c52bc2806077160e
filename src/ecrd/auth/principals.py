"""Who is calling: an account's root, one of its users, or nobody (anonymous)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    # None for an anonymous caller, who has neither account nor ARN.
    account_id: str | None
    arn: str | None
    # The IAM user's name; None for an account's root and for anonymous callers.
    user_name: str | None = None
    # The identity policies (IAM JSON texts) attached to the user. Root needs none.
    identity_policies: tuple[str, ...] = field(default=())
    # The user's row id: a user deleted and made again under the same name is another user,
    # as on AWS, so tokens of the old one must not work for the new one.
    user_id: int | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.account_id is None

    @property
    def is_root(self) -> bool:
        return self.account_id is not None and self.user_name is None

    @property
    def display_arn(self) -> str:
        """How AccessDenied messages name the caller."""
        return self.arn or "anonymous"


ANONYMOUS = Principal(account_id=None, arn=None)


def root_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:root"


def user_arn(account_id: str, user_name: str) -> str:
    return f"arn:aws:iam::{account_id}:user/{user_name}"


def root_of(account_id: str) -> Principal:
    return Principal(account_id=account_id, arn=root_arn(account_id))
