"""Every domain error the source raises maps to an AWS error code a client knows.

The pairs (error class, resource) are read from the source itself: each ``raise`` of a
domain error, with its ``resource=`` argument. A pair without a mapping would reach the client
as InternalFailure; a code outside botocore's error shapes and the common AWS errors would be
one no SDK can name.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import botocore.session
import pytest

from cachefleet.api.errors import ErrorCatalog
from cachefleet.domain import errors as domain
from cachefleet.domain import kinds

SOURCE = Path(domain.__file__).resolve().parent.parent
SESSION = botocore.session.get_session()
MODELS = [SESSION.get_service_model(name) for name in ("elasticache", "cloudwatch", "logs")]
MODELLED_CODES = {
    shape.metadata.get("error", {}).get("code", shape.name) for model in MODELS for shape in model.error_shapes
}
# https://docs.aws.amazon.com/AmazonElastiCache/latest/APIReference/CommonErrors.html and its siblings.
COMMON_CODES = {
    "AccessDeniedException", "IncompleteSignature", "InternalFailure", "InvalidAction", "InvalidClientTokenId",
    "InvalidParameterCombination", "InvalidParameterValue", "InvalidQueryParameter", "MalformedQueryString",
    "MissingAction", "MissingAuthenticationToken", "MissingParameter", "NotAuthorized", "OptInRequired",
    "RequestExpired", "ServiceUnavailable", "ThrottlingException", "ValidationError",
}
DOMAIN_ERRORS = {
    name: value for name, value in vars(domain).items()
    if isinstance(value, type) and issubclass(value, domain.CachefleetError)
}
# Classes mapped by class alone, whatever their resource.
BY_CLASS = {domain.InvalidParameterValue, domain.InvalidParameterCombination, domain.ValidationError, domain.StoreUnavailable}
# A resource that is not a literal must be listed here with every value it can take.
KIND_NAMES = {kind.name for kind in kinds.all_kinds()}
DYNAMIC_RESOURCES = {
    ("domain/base.py", "kind.KIND.name"): KIND_NAMES,  # UseCases._get: the NotFound of the kind looked up
    ("domain/tagging.py", "kind.name"): KIND_NAMES,  # the kind an ARN's resource type names
    ("domain/users.py", "DUPLICATE_USER_NAME"): {"UserName"},  # a user name taken by another user
    ("domain/users.py", "DEFAULT_USER"): {"DefaultUser"},  # a user group without (or leaving) a default user
    # The snapshot family's errors, told with the serverless kinds.
    ("domain/serverless_snapshots.py", "renamed"): {"ServerlessCacheSnapshot", "ServerlessCache"},
}


def _error_names(tree: ast.Module) -> tuple[dict[str, type[domain.CachefleetError]], set[str]]:
    """Names bound to domain error classes in a module, and names bound to the errors module."""
    classes: dict[str, type[domain.CachefleetError]] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "cachefleet.domain.errors":
            for alias in node.names:
                if alias.name in DOMAIN_ERRORS:
                    classes[alias.asname or alias.name] = DOMAIN_ERRORS[alias.name]
        elif isinstance(node, ast.ImportFrom) and node.module == "cachefleet.domain":
            modules.update(alias.asname or alias.name for alias in node.names if alias.name == "errors")
        elif isinstance(node, ast.Import):
            modules.update(alias.asname for alias in node.names if alias.name == "cachefleet.domain.errors" and alias.asname)
    return classes, modules


def raised_pairs() -> dict[tuple[type[domain.CachefleetError], str], str]:
    """(error class, resource) -> where the source makes such an error first."""
    pairs: dict[tuple[type[domain.CachefleetError], str], str] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        tree = ast.parse(path.read_text(), filename=relative)
        classes, modules = _error_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            if isinstance(function, ast.Name) and function.id in classes:
                error_class = classes[function.id]
            elif (isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name)
                  and function.value.id in modules and function.attr in DOMAIN_ERRORS):
                error_class = DOMAIN_ERRORS[function.attr]
            else:
                continue
            resource = next((keyword.value for keyword in node.keywords if keyword.arg == "resource"), None)
            where = f"{relative}:{node.lineno}"
            if resource is None:
                values = {""}
            elif isinstance(resource, ast.Constant) and isinstance(resource.value, str):
                values = {resource.value}
            else:
                source = ast.unparse(resource)
                assert (relative, source) in DYNAMIC_RESOURCES, (
                    f"{where}: resource={source} is not a literal; list the values it takes in DYNAMIC_RESOURCES"
                )
                values = DYNAMIC_RESOURCES[(relative, source)]
            for value in values:
                pairs.setdefault((error_class, value), where)
    return pairs


def test_the_scan_finds_the_errors_the_source_raises():
    pairs = raised_pairs()
    assert (domain.NotFound, "ReplicationGroup") in pairs
    assert (domain.NotFound, "ServerlessCache") in pairs  # through the dynamic resource of _tagged
    assert (domain.InvalidArn, "Resource") in pairs
    assert len(pairs) > 25


def test_every_raised_domain_error_maps_to_a_known_aws_code():
    catalog = ErrorCatalog(*MODELS)
    unmapped = []
    for (error_class, resource), where in sorted(raised_pairs().items(), key=lambda item: item[1]):
        code = catalog.from_domain(error_class("message", resource=resource)).code
        if code == "InternalFailure" and error_class not in BY_CLASS:
            unmapped.append(f"{where}: {error_class.__name__}(resource={resource!r}) has no error code")
        elif code not in MODELLED_CODES and code not in COMMON_CODES:
            unmapped.append(f"{where}: {error_class.__name__}(resource={resource!r}) -> {code}, which no model knows")
    assert not unmapped, "\n".join(unmapped)


@pytest.mark.parametrize("arn_type", sorted(kinds.BY_ARN_TYPE))
def test_a_missing_resource_of_every_arn_type_has_its_not_found_code(arn_type):
    catalog = ErrorCatalog(*MODELS)
    error = catalog.from_domain(domain.NotFound("gone", resource=kinds.BY_ARN_TYPE[arn_type].name))
    assert error.code in MODELLED_CODES and error.code.lower().replace("fault", "").endswith("notfound"), error.code
    assert catalog.kind(error.code).status in (400, 404)


def test_an_unmapped_domain_error_is_an_internal_failure_that_is_logged(caplog):
    catalog = ErrorCatalog(*MODELS)
    with caplog.at_level(logging.ERROR, logger="cachefleet.api.errors"):
        error = catalog.from_domain(domain.AlreadyExists("Widget w already exists.", resource="Widget"))
    assert error.code == "InternalFailure" and error.message == "Widget w already exists."
    assert catalog.kind("InternalFailure").status == 500
    assert "AlreadyExists(resource='Widget')" in caplog.text
