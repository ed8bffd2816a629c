"""The IAM feature's tables: iam_roles, iam_role_policies (inline), iam_attached_policies
(managed). IAM is global: no region. Only `IamService` uses this module."""

from __future__ import annotations

from dataclasses import dataclass

from fleetsim.localcore.db import Database


@dataclass(frozen=True)
class RoleRecord:
    name: str
    role_id: str
    path: str
    trust_policy: str
    description: str | None
    max_session: int
    created: float


class IamStore:
    def __init__(self, db: Database):
        self.db = db

    def role(self, name: str) -> RoleRecord | None:
        row = self.db.one("SELECT * FROM iam_roles WHERE name = ?", (name,))
        return RoleRecord(**dict(row)) if row is not None else None

    def roles(self, path_prefix: str) -> list[RoleRecord]:
        rows = self.db.query("SELECT * FROM iam_roles WHERE substr(path, 1, ?) = ? "
                             "ORDER BY name", (len(path_prefix), path_prefix))
        return [RoleRecord(**dict(r)) for r in rows]

    def add_role(self, role: RoleRecord) -> None:
        with self.db.transaction() as db:
            db.write("INSERT INTO iam_roles(name, role_id, path, trust_policy, description, "
                     "max_session, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (role.name, role.role_id, role.path, role.trust_policy, role.description,
                      role.max_session, role.created))

    def delete_role(self, name: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM iam_roles WHERE name = ?", (name,))

    def inline(self, role: str) -> dict[str, str]:
        rows = self.db.query("SELECT name, document FROM iam_role_policies WHERE role = ? "
                             "ORDER BY name", (role,))
        return {r["name"]: r["document"] for r in rows}

    def put_inline(self, role: str, name: str, document: str) -> None:
        with self.db.transaction() as db:
            db.write("INSERT OR REPLACE INTO iam_role_policies(role, name, document) "
                     "VALUES (?, ?, ?)", (role, name, document))

    def delete_inline(self, role: str, name: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM iam_role_policies WHERE role = ? AND name = ?", (role, name))

    def attached(self, role: str) -> list[str]:
        rows = self.db.query("SELECT policy_arn FROM iam_attached_policies WHERE role = ? "
                             "ORDER BY policy_arn", (role,))
        return [r["policy_arn"] for r in rows]

    def attach(self, role: str, arn: str) -> None:
        with self.db.transaction() as db:
            db.write("INSERT OR IGNORE INTO iam_attached_policies(role, policy_arn) "
                     "VALUES (?, ?)", (role, arn))

    def detach(self, role: str, arn: str) -> None:
        with self.db.transaction() as db:
            db.write("DELETE FROM iam_attached_policies WHERE role = ? AND policy_arn = ?",
                     (role, arn))
