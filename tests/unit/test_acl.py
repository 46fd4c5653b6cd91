"""ACL rendering, ACL LIST parsing and the user sync plan (pure; the engine-level tests are in
tests/acceptance/test_engine_acl.py)."""

from __future__ import annotations

import hashlib

from cachefleet.engine import acl

H1 = hashlib.sha256(b"first-password-123").hexdigest()
H2 = hashlib.sha256(b"second-password-123").hexdigest()


def test_password_hashes_are_the_engines_sha256():
    assert acl.password_hash("first-password-123") == H1
    assert len(acl.new_password()) >= 40 and acl.new_password() != acl.new_password()


def test_setuser_starts_from_reset_and_carries_hashes_only():
    user = acl.WantedUser("reader", "on ~app:* +get (~b:* +set)", (H1, H2))
    assert user.setuser() == ("ACL", "SETUSER", "reader", "reset", "on", "~app:*", "+get", "(~b:* +set)", f"#{H1}", f"#{H2}")
    assert "first-password" not in " ".join(user.setuser()) and H1 not in repr(user)
    assert acl.WantedUser("default", "on ~* +@all", nopass=True).setuser()[-1] == "nopass"
    assert acl.WantedUser("default", "off").acl_line() == "user default reset off"


def test_control_plane_rules_name_subcommands_one_by_one():
    rules = acl.control_plane_rules()
    assert rules[:4] == ("on", "~*", "resetchannels", "-@all")
    # A whole container would allow CLUSTER RESET, CONFIG REWRITE, CLIENT NO-EVICT, ACL SAVE ...
    for container in ("cluster", "config", "client", "acl", "slowlog"):
        assert f"+{container}" not in rules
    assert "+migrate" in rules and "+restore-asking" in rules and "+psync" in rules
    user = acl.control_plane_user("a-password-for-the-node")
    assert user.name == "cachefleet-control" and user.password_hashes == (acl.password_hash("a-password-for-the-node"),)


def test_acl_list_lines_of_every_engine():
    valkey8 = f"user u0 on sanitize-payload #{H1} ~app:* resetchannels -@all +get"
    valkey9 = f"user u0 on #{H1} ~app:* resetchannels -@all +get"
    users = acl.parse_acl_list([valkey8.encode(), "user default on nopass sanitize-payload ~* &* +@all"])
    assert users["u0"] == acl.EngineUser.parse(valkey9)  # sanitize-payload is reset's default everywhere
    assert users["u0"].rules == "~app:* resetchannels -@all +get" and users["u0"].password_hashes == {H1}
    assert users["default"].nopass and users["default"].enabled and users["default"].rules == "~* &* +@all"


def _engine(name, rules, *, enabled=True, hashes=(H1,), nopass=False):
    return acl.EngineUser(name=name, enabled=enabled, nopass=nopass, password_hashes=frozenset(hashes), rules=rules)


def test_the_plan_compares_in_the_engines_own_words():
    wanted = [acl.WantedUser("reader", "on ~app:* +GET +set", (H1,))]
    # Redis 7.0 rewrites the command rules; the engine's own rendering is what is compared.
    current = {"reader": _engine("reader", "~app:* resetchannels -@all +set +get")}
    rendered = {"reader": _engine("reader", "~app:* resetchannels -@all +set +get")}
    assert acl.plan(wanted, current, rendered=rendered).empty
    # Without a rendering nothing is assumed equal: the user is re-applied (idempotent).
    assert acl.plan(wanted, current).setusers == ((wanted[0], "access string not rendered on the engine"),)
    changed = {"reader": _engine("reader", "~app:* resetchannels -@all +get")}
    assert acl.plan(wanted, current, rendered=changed).setusers == ((wanted[0], "access differs"),)
    disabled = {"reader": _engine("reader", "~app:* resetchannels -@all +set +get", enabled=False)}
    assert acl.plan(wanted, current, rendered=disabled).setusers[0][1] == "access differs"


def test_the_plan_sees_password_changes():
    wanted = [acl.WantedUser("reader", "on +get", (H1, H2))]
    rendered = {"reader": _engine("reader", "resetchannels -@all +get")}
    assert acl.plan(wanted, {"reader": _engine("reader", "resetchannels -@all +get")}, rendered=rendered).setusers[0][1] == (
        "passwords differ")
    assert acl.plan(wanted, {"reader": _engine("reader", "resetchannels -@all +get", hashes=(H2, H1))},
                    rendered=rendered).empty
    nopass = [acl.WantedUser("reader", "on +get", nopass=True)]
    assert acl.plan(nopass, {"reader": _engine("reader", "resetchannels -@all +get", hashes=())},
                    rendered=rendered).setusers[0][1] == "passwords differ"


def test_the_plan_creates_and_deletes_but_never_default_or_kept_users():
    wanted = [acl.WantedUser("default", "off"), acl.WantedUser("new", "on +get", (H1,))]
    current = {
        "default": _engine("default", "resetchannels -@all", enabled=False, hashes=()),
        "cachefleet-control": _engine("cachefleet-control", "~* resetchannels -@all +ping"),
        "gone": _engine("gone", "~* +@all"),
        "cachefleet-probe-3": _engine("cachefleet-probe-3", "-@all", enabled=False, hashes=()),
    }
    rendered = {"default": _engine("default", "resetchannels -@all", enabled=False, hashes=())}
    steps = acl.plan(wanted, current, rendered=rendered)
    assert [(u.name, why) for u, why in steps.setusers] == [("new", "missing")]
    assert steps.delusers == ("cachefleet-probe-3", "gone")
    assert steps.commands()[-1] == ("ACL", "DELUSER", "cachefleet-probe-3", "gone")
    # A group without a default user of its own leaves the engine's default alone.
    assert "default" not in acl.plan([], current).delusers


def test_atomic_slot_migration_rules_only_on_builds_that_have_it():
    from cachefleet.engine.cluster import atomic_slot_migration

    assert atomic_slot_migration("valkey", "9.1.2") and atomic_slot_migration("valkey", "10.0.0")
    assert not atomic_slot_migration("valkey", "8.1.4") and not atomic_slot_migration("redis", "9.0.0")
    assert not atomic_slot_migration("redis", "7.0.15")
    # Redis OSS 7.0 refuses an ACL line naming a subcommand it does not have: never on older builds.
    assert "+cluster|migrateslots" not in acl.control_plane_rules()
    assert "+cluster|migrateslots" in acl.control_plane_rules(atomic_slots=True)
    importer = acl.slot_import_user("a-password-for-the-node")
    assert importer.name == "cachefleet-slots" and importer.password_hashes == (acl.password_hash("a-password-for-the-node"),)
    rules = importer.rules()
    assert rules[:4] == ("on", "~*", "resetchannels", "-@all") and "-@dangerous" in rules and "+@read" not in rules
