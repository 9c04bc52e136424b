#!/usr/bin/env bash
# Seeds the hr-integration demo tenant ("hr_demo") through grpcurl, then
# prints a few checks. Start the server with this example's schema first:
#
#   authzd serve --listen 127.0.0.1:50063 --data "$(mktemp -d)" --schema examples/hr-integration/schema.toml
#   examples/hr-integration/seed.sh          # AUTHZD_ADDR=host:port to override
#
# See README.md next to this file for what each step means.
set -euo pipefail
addr=${AUTHZD_ADDR:-127.0.0.1:50063}

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
# refused METHOD CODE: the call must fail with CODE; prints its message.
refused() {
  local out
  if out=$(grpcurl -plaintext -d @ "$addr" "authzd.v1.$1" 2>&1); then
    echo "unexpected success of $1: $out" >&2
    exit 1
  fi
  if ! grep -q "Code: $2" <<<"$out"; then
    echo "expected $2 from $1, got: $out" >&2
    exit 1
  fi
  sed -n 's/^ *Message: /  refused ('"$2"'): /p' <<<"$out"
}

echo "== units: riyadh (with riyadh_finance below it) and jeddah"
call DirectoryService/CreateScope <<'JSON'
{"tenant": "hr_demo", "scope": {"id": "riyadh", "type": "unit"}}
JSON
call DirectoryService/CreateScope <<'JSON'
{"tenant": "hr_demo", "scope": {"id": "riyadh_finance", "type": "unit", "parent": "riyadh"}}
JSON
call DirectoryService/CreateScope <<'JSON'
{"tenant": "hr_demo", "scope": {"id": "jeddah", "type": "unit"}}
JSON

echo "== people: an employee's unit is its home_scope"
for subject in \
  '{"id": "admin_amal"}' \
  '{"id": "it_khalid"}' \
  '{"id": "hr_sara", "home_scope": "riyadh"}' \
  '{"id": "hr_omar", "home_scope": "jeddah"}' \
  '{"id": "emp_faisal", "home_scope": "riyadh"}' \
  '{"id": "emp_noura", "home_scope": "riyadh_finance"}' \
  '{"id": "emp_yousef", "home_scope": "jeddah"}'; do
  call DirectoryService/CreateSubject <<JSON
{"tenant": "hr_demo", "subject": $subject}
JSON
done

echo "== roles: administrator, HR managers per unit, an integrations manager"
call MembershipService/ManageMembership <<'JSON'
{"tenant": "hr_demo", "operations": [
  {"assign_role": {"role": "admin", "principal": {"subject": "admin_amal"}}},
  {"assign_role": {"role": "hr_manager", "principal": {"subject": "hr_sara"}, "target": {"scope": "riyadh"}}},
  {"assign_role": {"role": "hr_manager", "principal": {"subject": "hr_omar"}, "target": {"scope": "jeddah"}}},
  {"assign_role": {"role": "integrations_manager", "principal": {"subject": "it_khalid"}}}
]}
JSON

echo "== an employee who manages nobody cannot become an authorized user"
refused MembershipService/ManageMembership FailedPrecondition <<'JSON'
{"tenant": "hr_demo", "options": {"actor": "admin_amal"}, "operations": [
  {"assign_role": {"role": "authorized_user", "principal": {"subject": "emp_faisal"}}}
]}
JSON

echo "== an integrations manager cannot hand out an authorization it does not hold itself"
# At riyadh, where nobody is ever authorized: a second run of this script
# is refused the same way (hr_sara's authorization at the root, below,
# would by then exist, and giving an existing assignment again changes
# nothing).
refused MembershipService/ManageMembership PermissionDenied <<'JSON'
{"tenant": "hr_demo", "options": {"actor": "it_khalid"}, "operations": [
  {"assign_role": {"role": "authorized_user", "principal": {"subject": "hr_sara"}, "target": {"scope": "riyadh"}}}
]}
JSON

echo "== the administrator authorizes both HR managers"
call MembershipService/ManageMembership <<'JSON'
{"tenant": "hr_demo", "options": {"actor": "admin_amal"}, "operations": [
  {"assign_role": {"role": "authorized_user", "principal": {"subject": "hr_sara"}}},
  {"assign_role": {"role": "authorized_user", "principal": {"subject": "hr_omar"}}}
]}
JSON

echo "== the administrator's authorization comes from the admin role and cannot be removed"
refused MembershipService/ManageMembership FailedPrecondition <<'JSON'
{"tenant": "hr_demo", "options": {"actor": "it_khalid"}, "operations": [
  {"unassign_role": {"role": "authorized_user", "principal": {"subject": "admin_amal"}}}
]}
JSON

echo "== the list of authorized users (admin_amal is implied)"
show AccessService/ListSubjectsWithPermission <<'JSON'
{"tenant": "hr_demo", "permission": "gov:authorized"}
JSON

echo "== checks"
for question in \
  'hr_sara gov:renew_iqama emp_faisal' \
  'hr_sara gov:renew_iqama emp_noura' \
  'hr_sara gov:transfer emp_yousef' \
  'hr_omar gov:transfer emp_yousef' \
  'it_khalid gov:renew_iqama emp_faisal' \
  'admin_amal gov:issue_exit_reentry emp_yousef'; do
  read -r subject permission target <<<"$question"
  echo "-- may $subject run $permission for $target?"
  show AccessService/CheckAccess <<JSON
{"tenant": "hr_demo", "subject": "$subject", "permission": "$permission", "target_subject": "$target"}
JSON
done

echo "-- why may hr_sara not run gov:transfer for emp_yousef?"
show AccessService/CheckAccess <<'JSON'
{"tenant": "hr_demo", "subject": "hr_sara", "permission": "gov:transfer", "target_subject": "emp_yousef", "explain": true}
JSON
