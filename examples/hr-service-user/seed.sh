#!/usr/bin/env bash
# Seeds the hr-service-user demo tenant ("hr_demo") through grpcurl, then
# prints a few checks, changes one employee's lifecycle status and shows the
# right go, the change feed and the explanation. Start the server with this
# example's schema first:
#
#   authzd serve --listen 127.0.0.1:50064 --data "$(mktemp -d)" --schema examples/hr-service-user/schema.toml
#   examples/hr-service-user/seed.sh         # AUTHZD_ADDR=host:port to override
#
# See README.md next to this file for what each step means.
set -euo pipefail
addr=${AUTHZD_ADDR:-127.0.0.1:50064}

# call METHOD: sends the JSON on stdin to authzd.v1.METHOD; quiet on success.
# ALREADY_EXISTS is success: run again against the same store, the script
# finds what its first run created and leaves it as it is.
call() {
  local out
  if ! out=$(grpcurl -plaintext -d @ "$addr" "authzd.v1.$1" 2>&1); then
    grep -q "Code: AlreadyExists" <<<"$out" || { echo "$1 failed: $out" >&2; exit 1; }
  fi
}
# show METHOD: the same, printing the reply (fields at default values too).
show() { grpcurl -plaintext -emit-defaults -d @ "$addr" "authzd.v1.$1"; }
# ask SUBJECT PERMISSION TARGET: CheckAccess over a target subject.
ask() {
  echo "-- may $1 do $2 over $3?"
  show AccessService/CheckAccess <<JSON
{"tenant": "hr_demo", "subject": "$1", "permission": "$2", "target_subject": "$3"}
JSON
}

echo "== the learning product's service user"
call DirectoryService/CreateSubject <<'JSON'
{"tenant": "hr_demo", "subject": {"id": "svc_learning", "kind": "SUBJECT_KIND_SERVICE"}}
JSON

echo "== employees, one per lifecycle status"
for pair in emp_ali:employed emp_huda:garden_leave emp_sami:leave emp_reem:terminated emp_zaid:onboarding; do
  call DirectoryService/CreateSubject <<JSON
{"tenant": "hr_demo", "subject": {"id": "${pair%%:*}", "attributes": {"lifecycle_status": "${pair#*:}"}}}
JSON
done

echo "== the permission group (members) and its population (by condition)"
call DirectoryService/CreateGroup <<'JSON'
{"tenant": "hr_demo", "group": {"id": "learning_access", "title": "Learning product: lifecycle access"}}
JSON
call DirectoryService/CreateGroup <<'JSON'
{"tenant": "hr_demo", "group": {"id": "learning_population", "title": "Employees the learning product may see",
  "condition": "attributes.lifecycle_status in [\"employed\", \"garden_leave\", \"leave\", \"terminated\"]"}}
JSON

echo "== the service user joins the group; the group views lifecycle sections over the population"
call MembershipService/ManageMembership <<'JSON'
{"tenant": "hr_demo", "operations": [
  {"add_member": {"group": "learning_access", "member": {"subject": "svc_learning"}}},
  {"assign_role": {"role": "lifecycle_viewer", "principal": {"group": "learning_access"},
                   "target": {"population": "learning_population"}}}
]}
JSON

echo "== checks"
ask svc_learning lifecycle:view emp_ali
ask svc_learning lifecycle:view emp_reem
ask svc_learning lifecycle:view emp_zaid
ask svc_learning employees:view_info emp_ali

echo "== emp_ali's lifecycle_status becomes \"archived\""
rev=$(grpcurl -plaintext -d @ "$addr" authzd.v1.DirectoryService/UpdateSubject <<'JSON' | sed -n 's/^ *"revision": "\([0-9]*\)".*/\1/p'
{"tenant": "hr_demo", "subject": {"id": "emp_ali", "attributes": {"lifecycle_status": "archived"}},
 "update_mask": {"paths": ["attributes"]}}
JSON
)
echo "committed at revision $rev"
ask svc_learning lifecycle:view emp_ali

echo "-- the change feed for emp_ali from just before it (one second of Watch)"
feed=$(grpcurl -plaintext -max-time 1 -d @ "$addr" authzd.v1.WatchService/Watch 2>&1 <<JSON || true
{"tenant": "hr_demo", "after_revision": $((rev - 1)), "subject": "emp_ali"}
JSON
)
if ! grep -q '"subjectPut"' <<<"$feed"; then
  echo "the feed did not carry the change: $feed" >&2
  exit 1
fi
sed '/^ERROR:/,$d' <<<"$feed"

echo "-- why not?"
show AccessService/CheckAccess <<'JSON'
{"tenant": "hr_demo", "subject": "svc_learning", "permission": "lifecycle:view", "target_subject": "emp_ali", "explain": true}
JSON
