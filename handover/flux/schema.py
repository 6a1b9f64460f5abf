"""A strict, hand-written schema of the Flux objects the migration writes, and a validator.

Written from the upstream API types (field names, required fields, enums and patterns), not copied:
- helm-controller ``api/v2/helmrelease_types.go`` (+ ``reference_types.go``): HelmRelease v2
- kustomize-controller ``api/v1/kustomization_types.go`` (+ ``reference_types.go``): Kustomization v1
- source-controller ``api/v1/gitrepository_types.go``, ``api/v1/helmrepository_types.go``
- fluxcd/pkg ``apis/meta`` (LocalObjectReference, ValuesReference, KubeConfigReference),
  ``apis/kustomize`` (Patch, Image, Selector)

The schema is plain data in the OpenAPI v3 subset that CRDs use (type, properties, required, items,
enum, pattern, additionalProperties, x-kubernetes-preserve-unknown-fields), so the same data feeds
``validate()`` (phase 1's "Flux objects against their schemas" check: unknown fields are errors,
as ``kubectl apply --validate=strict`` / a real API server with field validation would report them)
and ``crd_schema()`` (the rehearsal cluster's stand-in CRDs).

Checking objects against it (``check_objects``: the hazard check ``flux-schema``): an unknown or
misspelt field (``spec.chart.spec.vesion``) passes kustomize and kubectl, and the rehearsal API
server (v1.20) prunes unknown fields of the CRDs without a word, so a server dry-run cannot catch
it; Flux would then reconcile with the field missing (here: the newest chart instead of the pinned
version). Every Flux object in the build is validated, and each problem names its field path.
Offline, read-only.
"""

from __future__ import annotations

import copy
import difflib
import re
from typing import Any

from handover.core.findings import Finding
from handover.core.objects import group_of
from handover.flux import rules as flux
from handover.sources import kustomize

Schema = dict[str, Any]

# Go duration as the Flux APIs constrain it (kubebuilder Pattern on every interval/timeout).
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


# ---- small constructors for the schema data -------------------------------------------------------
def _s(
    enum: list[str] | None = None,
    pattern: str | None = None,
    max_length: int | None = None,
    min_length: int | None = None,
) -> Schema:
    out: Schema = {"type": "string"}
    if enum:
        out["enum"] = enum
    if pattern:
        out["pattern"] = pattern
    if max_length is not None:
        out["maxLength"] = max_length
    if min_length is not None:
        out["minLength"] = min_length
    return out


def _b() -> Schema:
    return {"type": "boolean"}


def _i(minimum: int | None = None) -> Schema:
    out: Schema = {"type": "integer"}
    if minimum is not None:
        out["minimum"] = minimum
    return out


def _dur() -> Schema:
    return _s(pattern=DURATION)


def _map() -> Schema:
    return {"type": "object", "additionalProperties": {"type": "string"}}


def _arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _json() -> Schema:
    """Free-form JSON (apiextensionsv1.JSON): any value, any fields."""
    return {"x-kubernetes-preserve-unknown-fields": True}


def _obj(required: list[str] | None = None, **props: Schema) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


# ---- shared reference types (fluxcd/pkg apis/meta, apis/kustomize) -------------------------------
LOCAL_REF = _obj(["name"], name=_s())
SECRET_KEY_REF = _obj(["name"], name=_s(), key=_s())
KUBECONFIG_REF = _obj(secretRef=SECRET_KEY_REF, configMapRef=LOCAL_REF)
SELECTOR = _obj(
    group=_s(),
    version=_s(),
    kind=_s(),
    name=_s(),
    namespace=_s(),
    annotationSelector=_s(),
    labelSelector=_s(),
)
PATCH = _obj(["patch"], patch=_s(), target=SELECTOR)
IMAGE = _obj(["name"], name=_s(), newName=_s(), newTag=_s(), digest=_s())
CUSTOM_HEALTH_CHECK = _obj(
    ["apiVersion", "kind", "current"],
    apiVersion=_s(),
    kind=_s(),
    current=_s(),
    inProgress=_s(),
    failed=_s(),
)
COMMON_METADATA = _obj(annotations=_map(), labels=_map())
IGNORE_RULE = _obj(["paths"], paths=_arr(_s()), target=SELECTOR)
DEPENDENCY = _obj(["name"], name=_s(), namespace=_s(), readyExpr=_s())
VALUES_REF = _obj(
    ["kind", "name"],
    kind=_s(enum=["Secret", "ConfigMap"]),
    name=_s(min_length=1, max_length=253),
    valuesKey=_s(max_length=253, pattern=r"^[\-._a-zA-Z0-9]+$"),
    targetPath=_s(max_length=250),
    optional=_b(),
)

# ---- helm-controller api/v2 HelmRelease -----------------------------------------------------------
_STRATEGY = _obj(
    ["name"], name=_s(enum=["RemediateOnFailure", "RetryOnFailure"]), retryInterval=_dur()
)
HELMRELEASE_SPEC = _obj(
    ["interval"],
    chart=_obj(
        ["spec"],
        metadata=_obj(labels=_map(), annotations=_map()),
        spec=_obj(
            ["chart", "sourceRef"],
            chart=_s(min_length=1, max_length=2048),
            version=_s(),
            sourceRef=_obj(
                ["name"],
                apiVersion=_s(),
                kind=_s(enum=["HelmRepository", "GitRepository", "Bucket"]),
                name=_s(min_length=1, max_length=253),
                namespace=_s(min_length=1, max_length=63),
            ),
            interval=_dur(),
            reconcileStrategy=_s(enum=["ChartVersion", "Revision"]),
            valuesFiles=_arr(_s()),
            ignoreMissingValuesFiles=_b(),
            verify=_obj(
                ["provider"], provider=_s(enum=["cosign", "notation"]), secretRef=LOCAL_REF
            ),
        ),
    ),
    chartRef=_obj(
        ["kind", "name"],
        apiVersion=_s(),
        kind=_s(enum=["OCIRepository", "HelmChart", "ExternalArtifact"]),
        name=_s(min_length=1, max_length=253),
        namespace=_s(min_length=1, max_length=63),
    ),
    interval=_dur(),
    kubeConfig=KUBECONFIG_REF,
    suspend=_b(),
    releaseName=_s(min_length=1, max_length=53),
    targetNamespace=_s(min_length=1, max_length=63),
    storageNamespace=_s(min_length=1, max_length=63),
    dependsOn=_arr(DEPENDENCY),
    timeout=_dur(),
    maxHistory=_i(),
    serviceAccountName=_s(min_length=1, max_length=253),
    persistentClient=_b(),
    driftDetection=_obj(mode=_s(enum=["enabled", "warn", "disabled"]), ignore=_arr(IGNORE_RULE)),
    install=_obj(
        timeout=_dur(),
        strategy=_STRATEGY,
        remediation=_obj(retries=_i(), ignoreTestFailures=_b(), remediateLastFailure=_b()),
        disableTakeOwnership=_b(),
        disableWait=_b(),
        disableWaitForJobs=_b(),
        disableHooks=_b(),
        disableOpenAPIValidation=_b(),
        disableSchemaValidation=_b(),
        replace=_b(),
        skipCRDs=_b(),
        crds=_s(enum=["Skip", "Create", "CreateReplace"]),
        createNamespace=_b(),
        serverSideApply=_b(),
    ),
    upgrade=_obj(
        timeout=_dur(),
        strategy=_STRATEGY,
        remediation=_obj(
            retries=_i(),
            ignoreTestFailures=_b(),
            remediateLastFailure=_b(),
            strategy=_s(enum=["rollback", "uninstall"]),
        ),
        disableTakeOwnership=_b(),
        disableWait=_b(),
        disableWaitForJobs=_b(),
        disableHooks=_b(),
        disableOpenAPIValidation=_b(),
        disableSchemaValidation=_b(),
        force=_b(),
        preserveValues=_b(),
        cleanupOnFail=_b(),
        crds=_s(enum=["Skip", "Create", "CreateReplace"]),
        serverSideApply=_s(enum=["enabled", "disabled", "auto"]),
        chartNameChangeStrategy=_s(enum=["InPlaceUpdate", "Reinstall"]),
    ),
    test=_obj(
        enable=_b(),
        timeout=_dur(),
        ignoreFailures=_b(),
        filters=_arr(_obj(["name"], name=_s(), exclude=_b())),
    ),
    rollback=_obj(
        timeout=_dur(),
        disableWait=_b(),
        disableWaitForJobs=_b(),
        disableHooks=_b(),
        recreate=_b(),
        force=_b(),
        cleanupOnFail=_b(),
        serverSideApply=_s(enum=["enabled", "disabled", "auto"]),
    ),
    uninstall=_obj(
        timeout=_dur(),
        disableHooks=_b(),
        keepHistory=_b(),
        disableWait=_b(),
        deletionPropagation=_s(enum=["background", "foreground", "orphan"]),
    ),
    valuesFrom=_arr(VALUES_REF),
    values=_json(),
    commonMetadata=COMMON_METADATA,
    postRenderers=_arr(_obj(kustomize=_obj(patches=_arr(PATCH), images=_arr(IMAGE)))),
    postRenderStrategy=_s(),
    waitStrategy=_obj(["name"], name=_s(enum=["poller", "legacy"])),
    healthCheckExprs=_arr(CUSTOM_HEALTH_CHECK),
)

# ---- kustomize-controller api/v1 Kustomization ----------------------------------------------------
KUSTOMIZATION_SPEC = _obj(
    ["interval", "prune", "sourceRef"],
    commonMetadata=COMMON_METADATA,
    dependsOn=_arr(DEPENDENCY),
    decryption=_obj(
        ["provider"], provider=_s(enum=["sops"]), serviceAccountName=_s(), secretRef=LOCAL_REF
    ),
    interval=_dur(),
    retryInterval=_dur(),
    kubeConfig=KUBECONFIG_REF,
    path=_s(),
    postBuild=_obj(
        substituteStrategy=_s(enum=["WithVariables", "Always"]),
        substitute=_map(),
        substituteFrom=_arr(
            _obj(["kind", "name"], kind=_s(enum=["Secret", "ConfigMap"]), name=_s(), optional=_b())
        ),
    ),
    prune=_b(),
    deletionPolicy=_s(enum=["MirrorPrune", "Delete", "WaitForTermination", "Orphan"]),
    healthChecks=_arr(
        _obj(["kind", "name"], apiVersion=_s(), kind=_s(), name=_s(), namespace=_s())
    ),
    namePrefix=_s(max_length=200),
    nameSuffix=_s(max_length=200),
    patches=_arr(PATCH),
    images=_arr(IMAGE),
    serviceAccountName=_s(),
    sourceRef=_obj(
        ["kind", "name"],
        apiVersion=_s(),
        kind=_s(enum=["OCIRepository", "GitRepository", "Bucket", "ExternalArtifact"]),
        name=_s(),
        namespace=_s(),
    ),
    suspend=_b(),
    targetNamespace=_s(min_length=1, max_length=63),
    timeout=_dur(),
    force=_b(),
    wait=_b(),
    buildMetadata=_arr(_s(enum=["originAnnotations", "transformerAnnotations"])),
    components=_arr(_s()),
    ignoreMissingComponents=_b(),
    healthCheckExprs=_arr(CUSTOM_HEALTH_CHECK),
    ignore=_arr(IGNORE_RULE),
)

# ---- source-controller api/v1 GitRepository / HelmRepository --------------------------------------
GITREPOSITORY_SPEC = _obj(
    ["interval", "url"],
    url=_s(pattern=r"^(http|https|ssh)://.*$"),
    secretRef=LOCAL_REF,
    provider=_s(enum=["generic", "aws", "azure", "github"]),
    serviceAccountName=_s(),
    interval=_dur(),
    timeout=_s(pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$"),
    ref=_obj(branch=_s(), tag=_s(), semver=_s(), name=_s(), commit=_s()),
    verify=_obj(
        ["secretRef"], mode=_s(enum=["head", "HEAD", "Tag", "TagAndHEAD"]), secretRef=LOCAL_REF
    ),
    proxySecretRef=LOCAL_REF,
    ignore=_s(),
    suspend=_b(),
    recurseSubmodules=_b(),
    include=_arr(_obj(["repository"], repository=LOCAL_REF, fromPath=_s(), toPath=_s())),
    sparseCheckout=_arr(_s()),
)

HELMREPOSITORY_SPEC = _obj(
    ["url"],
    url=_s(pattern=r"^(http|https|oci)://.*$"),
    secretRef=LOCAL_REF,
    certSecretRef=LOCAL_REF,
    passCredentials=_b(),
    interval=_dur(),
    insecure=_b(),
    timeout=_s(pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$"),
    suspend=_b(),
    accessFrom=_obj(["namespaceSelectors"], namespaceSelectors=_arr(_obj(matchLabels=_map()))),
    type=_s(enum=["default", "oci"]),
    provider=_s(enum=["generic", "aws", "azure", "gcp"]),
)


# ---- source-controller api/v1 OCIRepository / HelmChart / ExternalArtifact -------------------------
OCIREPOSITORY_SPEC = _obj(
    ["interval", "url"],
    url=_s(pattern=r"^oci://.*$"),
    ref=_obj(digest=_s(), tag=_s(), semver=_s(), semverFilter=_s()),
    layerSelector=_obj(mediaType=_s(), operation=_s(enum=["extract", "copy"])),
    provider=_s(enum=["generic", "aws", "azure", "gcp"]),
    secretRef=LOCAL_REF,
    verify=_obj(
        ["provider"],
        provider=_s(enum=["cosign", "notation"]),
        secretRef=LOCAL_REF,
        matchOIDCIdentity=_arr(_obj(["issuer", "subject"], issuer=_s(), subject=_s())),
    ),
    serviceAccountName=_s(),
    certSecretRef=LOCAL_REF,
    proxySecretRef=LOCAL_REF,
    interval=_dur(),
    timeout=_s(pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$"),
    ignore=_s(),
    insecure=_b(),
    suspend=_b(),
)

HELMCHART_SPEC = _obj(
    ["chart", "interval", "sourceRef"],
    chart=_s(),
    version=_s(),
    sourceRef=_obj(
        ["kind", "name"],
        apiVersion=_s(),
        kind=_s(enum=["HelmRepository", "GitRepository", "Bucket"]),
        name=_s(),
    ),
    interval=_dur(),
    reconcileStrategy=_s(enum=["ChartVersion", "Revision"]),
    valuesFiles=_arr(_s()),
    ignoreMissingValuesFiles=_b(),
    suspend=_b(),
    verify=_obj(
        ["provider"],
        provider=_s(enum=["cosign", "notation"]),
        secretRef=LOCAL_REF,
        matchOIDCIdentity=_arr(_obj(["issuer", "subject"], issuer=_s(), subject=_s())),
    ),
)

# written by its producer (an ArtifactGenerator), rarely in Git
EXTERNALARTIFACT_SPEC = _obj(
    sourceRef=_obj(["kind", "name"], apiVersion=_s(), kind=_s(), name=_s(), namespace=_s())
)

# ---- source-watcher api/v1beta1 ArtifactGenerator (source.extensions.fluxcd.io, Flux 2.7) --------
_ALIAS_PATH = r"^@([a-z0-9]([a-z0-9_-]*[a-z0-9])?)/(.*)$"
ARTIFACTGENERATOR_SPEC = _obj(
    ["sources", "artifacts"],
    commonMetadata=COMMON_METADATA,
    sources=_arr(
        _obj(
            ["alias", "kind", "name"],
            alias=_s(pattern=r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$", max_length=63),
            name=_s(max_length=253),
            namespace=_s(max_length=63),
            kind=_s(
                enum=["Bucket", "GitRepository", "OCIRepository", "HelmChart", "ExternalArtifact"]
            ),
        )
    ),
    serviceAccountName=_s(max_length=63),
    pathPattern=_s(pattern=_ALIAS_PATH, max_length=1024),
    namespaces=_obj(
        ["strategy"], strategy=_s(enum=["Unmanaged", "Managed"]), prune=_b(), metadata=_json()
    ),
    artifacts=_arr(
        _obj(
            ["name", "copy"],
            name=_s(max_length=1024),
            namespace=_s(max_length=1024),
            inputsFrom=_s(pattern=_ALIAS_PATH, max_length=1024),
            revision=_s(pattern=r"^@([a-z0-9]([a-z0-9_-]*[a-z0-9])?)$", max_length=64),
            originRevision=_s(pattern=r"^@([a-z0-9]([a-z0-9_-]*[a-z0-9])?)$", max_length=64),
            copy=_arr(
                _obj(
                    ["from", "to"],
                    **{
                        "from": _s(pattern=_ALIAS_PATH, max_length=1024),
                        "to": _s(pattern=r"^@artifact/.*$", max_length=1024),
                        "exclude": _arr(_s(max_length=1024)),
                        "strategy": _s(enum=["Overwrite", "Merge", "Extract"]),
                        "optional": _b(),
                    },
                )
            ),
        )
    ),
)


class KindInfo:
    def __init__(
        self,
        group: str,
        version: str,
        kind: str,
        plural: str,
        short: list[str],
        spec: Schema,
        printer: list[dict[str, Any]],
    ):
        self.group, self.version, self.kind, self.plural = group, version, kind, plural
        self.short, self.spec, self.printer = short, spec, printer

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


_READY_COLUMNS = [
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Status",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
    },
]

KINDS: dict[str, KindInfo] = {
    "HelmRelease": KindInfo(
        "helm.toolkit.fluxcd.io",
        "v2",
        "HelmRelease",
        "helmreleases",
        ["hr"],
        HELMRELEASE_SPEC,
        _READY_COLUMNS,
    ),
    "Kustomization": KindInfo(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
        "kustomizations",
        ["ks"],
        KUSTOMIZATION_SPEC,
        _READY_COLUMNS,
    ),
    "GitRepository": KindInfo(
        "source.toolkit.fluxcd.io",
        "v1",
        "GitRepository",
        "gitrepositories",
        ["gitrepo"],
        GITREPOSITORY_SPEC,
        [{"name": "URL", "type": "string", "jsonPath": ".spec.url"}] + _READY_COLUMNS,
    ),
    "HelmRepository": KindInfo(
        "source.toolkit.fluxcd.io",
        "v1",
        "HelmRepository",
        "helmrepositories",
        ["helmrepo"],
        HELMREPOSITORY_SPEC,
        [{"name": "URL", "type": "string", "jsonPath": ".spec.url"}] + _READY_COLUMNS,
    ),
    "OCIRepository": KindInfo(
        "source.toolkit.fluxcd.io",
        "v1",
        "OCIRepository",
        "ocirepositories",
        ["ocirepo"],
        OCIREPOSITORY_SPEC,
        [{"name": "URL", "type": "string", "jsonPath": ".spec.url"}] + _READY_COLUMNS,
    ),
    "HelmChart": KindInfo(
        "source.toolkit.fluxcd.io",
        "v1",
        "HelmChart",
        "helmcharts",
        ["hc"],
        HELMCHART_SPEC,
        _READY_COLUMNS,
    ),
    "ExternalArtifact": KindInfo(
        "source.toolkit.fluxcd.io",
        "v1",
        "ExternalArtifact",
        "externalartifacts",
        [],
        EXTERNALARTIFACT_SPEC,
        _READY_COLUMNS,
    ),
    "ArtifactGenerator": KindInfo(
        "source.extensions.fluxcd.io",
        "v1beta1",
        "ArtifactGenerator",
        "artifactgenerators",
        ["ag"],
        ARTIFACTGENERATOR_SPEC,
        _READY_COLUMNS,
    ),
}


def spec_schema(kind: str) -> Schema:
    if kind not in KINDS:
        raise KeyError(f"no schema for kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    return copy.deepcopy(KINDS[kind].spec)


# ---- validation -----------------------------------------------------------------------------------
_TYPES = {"string": str, "boolean": bool, "object": dict, "array": list}


def _type_ok(value: Any, typ: str) -> bool:
    if typ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[typ])


def _typename(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        dict: "object",
        list: "array",
    }.get(type(value), type(value).__name__)


def _walk(value: Any, schema: Schema, path: str, problems: list[str]) -> None:
    if schema.get("x-kubernetes-preserve-unknown-fields") and "type" not in schema:
        return
    typ = schema.get("type")
    if typ and not _type_ok(value, typ):
        problems.append(f"{path}: expected {typ}, got {_typename(value)} ({value!r})")
        return
    if typ == "string":
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{path}: {value!r} is not one of {', '.join(schema['enum'])}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']} characters")
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(
                f"{path}: must not be empty"
                if schema["minLength"] == 1
                else f"{path}: shorter than {schema['minLength']} characters"
            )
    elif typ == "integer":
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} is less than {schema['minimum']}")
    elif typ == "array":
        for n, item in enumerate(value):
            _walk(item, schema["items"], f"{path}[{n}]", problems)
    elif typ == "object":
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        for req in schema.get("required", []):
            if req not in value:
                problems.append(f"{path}.{req}: required field is missing")
        for key, item in value.items():
            sub = f"{path}.{key}"
            if props is not None and key in props:
                _walk(item, props[key], sub, problems)
            elif addl is not None:
                _walk(item, addl, sub, problems)
            elif schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            else:
                close = difflib.get_close_matches(key, list(props or {}), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                problems.append(f"{sub}: unknown field{hint}")


def validate(obj: dict[str, Any]) -> list[str]:
    """Problems of a Flux object against its schema, each naming the field path; [] when valid.

    Checks apiVersion (the version the migration targets), kind, metadata.name, then spec: unknown
    fields (with a did-you-mean hint), wrong types, enums, patterns, missing required fields.
    Kinds outside the schema give one problem saying so."""
    if not isinstance(obj, dict):
        return [f"<document>: expected an object, got {_typename(obj)}"]
    kind = obj.get("kind")
    if kind not in KINDS:
        return [f"kind: {kind!r} has no Flux schema here (known: {', '.join(sorted(KINDS))})"]
    info = KINDS[kind]
    problems: list[str] = []
    api = obj.get("apiVersion")
    if api != info.api_version:
        problems.append(f"apiVersion: {api!r} for {kind}, expected {info.api_version!r}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        problems.append("metadata.name: required field is missing")
    for key in obj:
        if key not in ("apiVersion", "kind", "metadata", "spec", "status"):
            problems.append(f"{key}: unknown field")
    if "spec" not in obj:
        problems.append("spec: required field is missing")
    else:
        _walk(obj["spec"], info.spec, "spec", problems)
        if kind == "HelmRelease" and isinstance(obj["spec"], dict):
            # CEL rule on HelmReleaseSpec: exactly one of chart / chartRef.
            if ("chart" in obj["spec"]) == ("chartRef" in obj["spec"]):
                problems.append("spec: either spec.chart or spec.chartRef must be set (not both)")
    return problems


# ---- CRD schema -----------------------------------------------------------------------------------
def crd_schema(kind: str) -> Schema:
    """openAPIV3Schema of the stand-in CRD for ``kind``: spec typed as above (unknown spec fields
    are pruned by the API server, as with the real CRDs), status free-form (preserve unknown)."""
    return {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(kind),
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }


def crd(kind: str) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of the stand-in for ``kind``."""
    info = KINDS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{info.group}",
            "labels": {
                "app.kubernetes.io/part-of": "flux",
                "app.kubernetes.io/component": "flux-handover-standin",
            },
        },
        "spec": {
            "group": info.group,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.kind.lower(),
                "shortNames": info.short,
                "categories": ["all"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": info.version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": crd_schema(kind)},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": info.printer,
                }
            ],
        },
    }


# ---- Flux objects against the schema (phase 1 hazard check) --------------------------------------
CHECK = "flux-schema"
FLUX_KINDS = {
    "HelmRelease": flux.HELM_GROUP,
    "Kustomization": flux.KUSTOMIZE_GROUP,
    "HelmRepository": flux.SOURCE_GROUP,
    "GitRepository": flux.SOURCE_GROUP,
    "OCIRepository": flux.SOURCE_GROUP,
    "HelmChart": flux.SOURCE_GROUP,
    "ExternalArtifact": flux.SOURCE_GROUP,
    "ArtifactGenerator": "source.extensions.fluxcd.io",
}


def is_flux_object(obj: dict[str, Any]) -> bool:
    return FLUX_KINDS.get(str(obj.get("kind", ""))) == group_of(str(obj.get("apiVersion", "")))


def flux_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if is_flux_object(o)]


def check_object(obj: dict[str, Any]) -> list[Finding]:
    subject = kustomize.object_id(obj)
    return [
        Finding(
            CHECK,
            subject,
            f"{p} (Flux {obj.get('kind')} schema {obj.get('apiVersion')})",
            "correct the field in Git: Flux ignores unknown fields, so the setting you "
            "meant is not applied",
        )
        for p in validate(obj)
    ]


def check_objects(objects: list[dict[str, Any]]) -> list[Finding]:
    out: list[Finding] = []
    for o in flux_objects(objects):
        out.extend(check_object(o))
    return out
