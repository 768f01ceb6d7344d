"""The new Security Hub's findings API (OCSF) and CSPM insights, for the test Security Hub server.

Shapes follow the service model (aws-sdk-securityhub 1.137 / botocore securityhub 2018-10-26),
summarised with sources in tests/fixtures/ocsf/NOTES.md:

    GetFindingsV2           POST  /findingsv2                 -> {"Findings": [OCSF], "NextToken"?}
    BatchUpdateFindingsV2   PATCH /findingsv2/batchupdatev2   -> {"ProcessedFindings", "UnprocessedFindings"}
    GetFindingStatisticsV2  POST  /findingsv2/statistics      -> {"GroupByResults": [...]}
    DescribeSecurityHubV2   GET   /hubv2                      -> {"HubV2Arn", "SubscribedAt"} | 404 ResourceNotFound
    CreateInsight           POST  /insights                   -> {"InsightArn"}
    GetInsights             POST  /insights/get               -> {"Insights": [...], "NextToken"?}
    GetInsightResults       GET   /insights/results/{arn}     -> {"InsightResults": {...}}

The CSPM findings the server stores are also shown through the v2 API, converted
to OCSF the way the new Security Hub presents CSPM control findings
(`asff_to_ocsf`); native OCSF findings (GuardDuty, Inspector fixtures) are stored
beside them. An update through either API shows in both.

Standard library only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any, Callable

from .http import ServiceError

MAX_COMPOSITES = 10
MAX_LEAVES = 20
MAX_GROUP_BY_RULES = 5
MAX_BATCH = 100
MAX_COMMENT = 512
STATUS_IDS = {0, 1, 2, 3, 4, 5, 99}
SEVERITY_IDS = {0, 1, 2, 3, 4, 5, 6, 99}
MAX_INSIGHTS = 100  # custom insights per account

SEVERITY_ID = {"INFORMATIONAL": 1, "LOW": 2, "MEDIUM": 3, "HIGH": 4, "CRITICAL": 5}
SEVERITY_CAPTION = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal", 99: "Other"}
STATUS_ID = {"NEW": 1, "NOTIFIED": 2, "SUPPRESSED": 3, "RESOLVED": 4}
STATUS_CAPTION = {0: "Unknown", 1: "New", 2: "In Progress", 3: "Suppressed", 4: "Resolved", 5: "Archived", 99: "Other"}
WORKFLOW_OF_STATUS = {1: "NEW", 2: "NOTIFIED", 3: "SUPPRESSED", 4: "RESOLVED"}
COMPLIANCE = {"PASSED": (1, "Pass"), "WARNING": (2, "Warning"), "FAILED": (3, "Fail"), "NOT_AVAILABLE": (0, "Unknown")}

# ASFF resource type -> the CloudFormation-style name OCSF findings carry.
RESOURCE_TYPES = {
    "AwsEc2SecurityGroup": "AWS::EC2::SecurityGroup",
    "AwsEc2Instance": "AWS::EC2::Instance",
    "AwsEc2Vpc": "AWS::EC2::VPC",
    "AwsAccount": "AWS::::Account",
    "AwsS3Bucket": "AWS::S3::Bucket",
    "AwsKmsKey": "AWS::KMS::Key",
    "AwsIamUser": "AWS::IAM::User",
    "AwsIamAccessKey": "AWS::IAM::AccessKey",
    "AwsGuardDutyDetector": "AWS::GuardDuty::Detector",
}

# Field names the model's enums allow (the subset findings here carry, plus the
# rest of the common ones, so a typo is an error as on AWS).
STRING_FIELDS = {
    "activity_name", "class_name", "cloud.account.name", "cloud.account.uid", "cloud.provider", "cloud.region",
    "comment", "compliance.control", "compliance.standards", "compliance.status", "finding_info.desc",
    "finding_info.title", "finding_info.types", "finding_info.uid", "finding_info.analytic.name",
    "metadata.product.name", "metadata.product.uid", "metadata.product.vendor_name", "metadata.uid",
    "remediation.desc", "remediation.references", "resources.cloud_partition", "resources.name",
    "resources.owner.account.uid", "resources.region", "resources.type", "resources.uid", "severity", "status",
    "vulnerabilities.cve.uid", "vulnerabilities.affected_packages.name",
}
NUMBER_FIELDS = {
    "activity_id", "compliance.status_id", "confidence_score", "severity_id", "status_id",
    "vendor_attributes.severity_id", "vulnerabilities.cve.cvss.base_score",
}
DATE_FIELDS = {
    "finding_info.created_time_dt", "finding_info.first_seen_time_dt", "finding_info.last_seen_time_dt",
    "finding_info.modified_time_dt", "resources.modified_time_dt",
}
GROUP_BY_FIELDS = {
    "activity_name", "class_name", "cloud.account.name", "cloud.account.uid", "cloud.provider", "cloud.region",
    "compliance.control", "compliance.standards", "compliance.status", "finding_info.title", "finding_info.types",
    "metadata.product.name", "metadata.product.uid", "resources.region", "resources.type", "resources.uid",
    "severity", "status",
}
SORT_FIELDS = STRING_FIELDS | NUMBER_FIELDS | DATE_FIELDS


def invalid(message: str) -> ServiceError:
    return ServiceError(400, "ValidationException", message)


def metadata_uid(asff: dict) -> str:
    """64 hex characters, as the new Security Hub's metadata.uid."""
    return hashlib.sha256(f"{asff.get('Id')}|{asff.get('ProductArn')}".encode()).hexdigest()


def _bare(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _epoch_ms(iso: str | None) -> int | None:
    from .securityhub import _parse_time  # one time parser for both APIs

    t = _parse_time(iso)
    return None if t is None else int(t * 1000)


def asff_to_ocsf(f: dict, status_override: int | None = None) -> dict:
    """A CSPM finding as the new Security Hub shows it (Compliance Finding, class 2003)."""
    label = (f.get("Severity") or {}).get("Label", "INFORMATIONAL")
    severity_id = SEVERITY_ID.get(label, 1)
    workflow = (f.get("Workflow") or {}).get("Status", "NEW")
    status_id = status_override or (5 if f.get("RecordState") == "ARCHIVED" else STATUS_ID.get(workflow, 1))
    compliance = f.get("Compliance") or {}
    product_arn = f.get("ProductArn", "")
    resources = []
    for r in f.get("Resources") or []:
        rid = r.get("Id", "")
        res = {
            "type": RESOURCE_TYPES.get(r.get("Type"), r.get("Type")),
            "uid": _bare(rid),
            "region": r.get("Region") or f.get("Region"),
            "cloud_partition": r.get("Partition", "aws"),
            "owner": {"account": {"uid": f.get("AwsAccountId")}},
        }
        if rid.startswith("arn:"):
            res["uid_alt"] = rid
        if r.get("Tags"):
            res["tags"] = [{"name": k, "value": v} for k, v in r["Tags"].items()]
        if r.get("Details"):
            res["data"] = r["Details"]
        resources.append(res)
    out: dict[str, Any] = {
        "activity_id": 2,
        "activity_name": "Update",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2003,
        "class_name": "Compliance Finding",
        "type_uid": 200302,
        "cloud": {"account": {"uid": f.get("AwsAccountId")}, "provider": "AWS", "region": f.get("Region")},
        "metadata": {
            "uid": metadata_uid(f),
            "version": "1.6.0",
            "product": {
                "name": f.get("ProductName", "Security Hub"),
                "uid": product_arn.replace(":product/", ":productv2/"),
                "vendor_name": f.get("CompanyName", "AWS"),
            },
        },
        "finding_info": {
            "uid": f.get("Id"),
            "title": f.get("Title"),
            "desc": f.get("Description"),
            "types": f.get("Types") or [],
            "created_time_dt": f.get("CreatedAt"),
            "created_time": _epoch_ms(f.get("CreatedAt")),
            "modified_time_dt": f.get("UpdatedAt"),
            "modified_time": _epoch_ms(f.get("UpdatedAt")),
            "analytic": {"name": f.get("GeneratorId"), "type": "Rule", "type_id": 1},
        },
        "severity_id": severity_id,
        "severity": SEVERITY_CAPTION[severity_id],
        "status_id": status_id,
        "status": STATUS_CAPTION.get(status_id, "Other"),
        "resources": resources,
        "time_dt": f.get("UpdatedAt"),
    }
    control = compliance.get("SecurityControlId") or (f.get("ProductFields") or {}).get("ControlId")
    if compliance:
        status_id_c, caption = COMPLIANCE.get(compliance.get("Status", ""), (0, "Unknown"))
        out["compliance"] = {
            "control": control,
            "status": caption,
            "status_id": status_id_c,
            "standards": [s.get("StandardsId") for s in compliance.get("AssociatedStandards") or [] if s.get("StandardsId")],
            "requirements": compliance.get("RelatedRequirements") or [],
        }
    url = ((f.get("Remediation") or {}).get("Recommendation") or {}).get("Url")
    if url:
        out["remediation"] = {"desc": ((f.get("Remediation") or {}).get("Recommendation") or {}).get("Text"), "references": [url]}
    note = (f.get("Note") or {}).get("Text")
    if note:
        out["comment"] = note
    return out


# --------------------------------------------------------------------------- filters


@functools.lru_cache(maxsize=256)
def _segments(dotted: str) -> tuple[str, ...]:
    return tuple(dotted.split("."))


def values_at(obj: Any, dotted: str) -> list[Any]:
    """Every scalar at a dotted OCSF path, stepping into lists."""
    segments = _segments(dotted)
    # Fast path: a path of objects only, as most filter fields are.
    current: Any = obj
    for seg in segments:
        if not isinstance(current, dict):
            break
        current = current.get(seg)
        if current is None:
            return []
    else:
        return current if isinstance(current, list) else [current]
    current = [obj]
    for seg in segments:
        nxt = []
        for v in current:
            items = v if isinstance(v, list) else [v]
            for item in items:
                if isinstance(item, dict) and item.get(seg) is not None:
                    nxt.append(item[seg])
        current = nxt
    out = []
    for v in current:
        out.extend(x for x in (v if isinstance(v, list) else [v]) if x is not None)
    return out


def _string_leaf(leaf: dict) -> Callable[[dict], bool]:
    name = leaf.get("FieldName")
    if name not in STRING_FIELDS:
        raise invalid(f"Invalid string filter field: {name!r}")
    f = leaf.get("Filter") or {}
    value, comparison = f.get("Value"), f.get("Comparison")
    if not isinstance(value, str):
        raise invalid(f"String filter on {name} needs a Value")
    tests = {
        "EQUALS": lambda v: v == value,
        "NOT_EQUALS": lambda v: v == value,
        "PREFIX": lambda v: v.startswith(value),
        "PREFIX_NOT_EQUALS": lambda v: v.startswith(value),
        "CONTAINS": lambda v: value in v,
        "NOT_CONTAINS": lambda v: value in v,
        "CONTAINS_WORD": lambda v: value in v.split(),
    }
    if comparison not in tests:
        raise invalid(f"Invalid Comparison {comparison!r} on {name}; expected one of {', '.join(tests)}")
    test = tests[comparison]
    negative = comparison.startswith("NOT_") or comparison == "PREFIX_NOT_EQUALS"

    def pred(finding: dict) -> bool:
        hits = any(test(v) for v in values_at(finding, name) if isinstance(v, str))
        return not hits if negative else hits

    return pred


def _number_leaf(leaf: dict) -> Callable[[dict], bool]:
    name = leaf.get("FieldName")
    if name not in NUMBER_FIELDS:
        raise invalid(f"Invalid number filter field: {name!r}")
    f = leaf.get("Filter") or {}
    bounds = {k: f[k] for k in ("Eq", "Gt", "Gte", "Lt", "Lte") if k in f}
    if not bounds:
        raise invalid(f"Number filter on {name} needs Eq, Gt, Gte, Lt or Lte")

    def ok(v: float) -> bool:
        return all({
            "Eq": v == b, "Gt": v > b, "Gte": v >= b, "Lt": v < b, "Lte": v <= b,
        }[k] for k, b in bounds.items())

    def pred(finding: dict) -> bool:
        return any(ok(v) for v in values_at(finding, name) if isinstance(v, (int, float)) and not isinstance(v, bool))

    return pred


def compile_composite(c: Any, depth: int = 0) -> Callable[[dict], bool]:
    if not isinstance(c, dict):
        raise invalid("Each CompositeFilter must be an object")
    if depth > 2:
        raise invalid("NestedCompositeFilters are nested too deeply")
    preds = []
    for key, build in (("StringFilters", _string_leaf), ("NumberFilters", _number_leaf)):
        leaves = c.get(key) or []
        if len(leaves) > MAX_LEAVES:
            raise invalid(f"{key}: at most {MAX_LEAVES} filters per composite filter; got {len(leaves)}")
        preds.extend(build(leaf) for leaf in leaves)
    for key in ("DateFilters", "BooleanFilters", "MapFilters", "IpFilters"):
        if c.get(key):
            raise invalid(f"{key} are valid for Security Hub but not supported by this test server")
    preds.extend(compile_composite(n, depth + 1) for n in c.get("NestedCompositeFilters") or [])
    operator = c.get("Operator", "AND")
    if operator not in ("AND", "OR"):
        raise invalid(f"Invalid Operator {operator!r}: expected AND or OR")
    if not preds:
        return lambda f: True
    if operator == "OR":
        return lambda f: any(p(f) for p in preds)
    return lambda f: all(p(f) for p in preds)


def compile_filters(filters: Any) -> Callable[[dict], bool]:
    """OcsfFindingFilters -> one predicate."""
    if filters is None:
        return lambda f: True
    if not isinstance(filters, dict):
        raise invalid("Filters must be an object")
    composites = filters.get("CompositeFilters") or []
    if not isinstance(composites, list) or len(composites) > MAX_COMPOSITES:
        raise invalid(f"CompositeFilters: a list of at most {MAX_COMPOSITES}")
    preds = [compile_composite(c) for c in composites]
    operator = filters.get("CompositeOperator", "AND")
    if operator not in ("AND", "OR"):
        raise invalid(f"Invalid CompositeOperator {operator!r}: expected AND or OR")
    if operator == "OR" and preds:
        return lambda f: any(p(f) for p in preds)
    return lambda f: all(p(f) for p in preds)


def sort_key(criteria: Any) -> Callable[[dict], tuple]:
    if criteria in (None, []):
        criteria = [{"Field": "finding_info.modified_time_dt", "SortOrder": "desc"}]
    if not isinstance(criteria, list):
        raise invalid("SortCriteria must be a list")
    fields = []
    for c in criteria:
        name, order = (c or {}).get("Field"), (c or {}).get("SortOrder", "asc")
        if name not in SORT_FIELDS:
            raise invalid(f"Invalid sort field: {name!r}")
        if order not in ("asc", "desc"):
            raise invalid(f"Invalid SortOrder {order!r}: expected asc or desc")
        fields.append((name, order))

    def key(finding: dict) -> tuple:
        parts = []
        for name, order in fields:
            vs = values_at(finding, name)
            v = vs[0] if vs else None
            if isinstance(v, (int, float)) and order == "desc":
                parts.append((v is None, -v))
            elif isinstance(v, str) and order == "desc":
                parts.append((False, tuple(-ord(ch) for ch in v)))
            else:
                parts.append((v is None, v if v is not None else 0))
        parts.append(values_at(finding, "metadata.uid"))
        return tuple(parts)

    return key


def encode_token(query: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"q": query, "o": offset}).encode()).decode()


def decode_token(token: Any, query: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(str(token).encode()).decode())
        offset = int(data["o"])
        same = data.get("q") == query
    except Exception:  # noqa: BLE001 - any malformed token is the same error
        raise invalid("The NextToken value is not valid") from None
    if not same:
        raise invalid("The NextToken value does not match these Filters and SortCriteria")
    return offset


def query_digest(body: dict) -> str:
    return hashlib.sha256(json.dumps({"f": body.get("Filters"), "s": body.get("SortCriteria")}, sort_keys=True).encode()).hexdigest()[:16]


def group_counts(findings: list[dict], field: str) -> list[dict]:
    """GroupByValues for one field: each distinct value a finding carries, counted once per finding."""
    counts: dict[str, int] = {}
    for f in findings:
        for v in {str(x) for x in values_at(f, field)}:
            counts[v] = counts.get(v, 0) + 1
    return [{"FieldValue": v, "Count": n} for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
