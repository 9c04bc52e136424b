#!/usr/bin/env bash
# Seeds the app-roles demo tenant ("acme_auto") through grpcurl: two apps
# with presentations, builtin and custom roles, bulk replace and removal,
# self-removal; then prints a few checks. Start the server with this
# example's schema first:
#
#   authzd serve --listen 127.0.0.1:50061 --data "$(mktemp -d)" --schema examples/app-roles/schema.toml
#   examples/app-roles/seed.sh               # AUTHZD_ADDR=host:port to override
#
# See README.md next to this file for what each step means.
set -euo pipefail
addr=${AUTHZD_ADDR:-127.0.0.1:50061}

# call METHOD: sends the JSON on stdin to authzd.v1.METHOD; quiet on success.
# ALREADY_EXISTS is success: run again against the same store, the script
# finds what its first run created and leaves it as it is.
call() {
  local out
  if ! out=$(grpcurl -plaintext -d @ "$addr" "authzd.v1.$1" 2>&1); then
    grep -q "Code: AlreadyExists" <<<"$out" || { echo "$1 failed: $out" >&2; exit 1; }
  fi
}
# show METHOD: the same, printing the reply.
show() { grpcurl -plaintext -d @ "$addr" "authzd.v1.$1"; }
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

echo "== apps and their presentations"
for scope in \
  '{"id": "invoices", "type": "app"}' \
  '{"id": "invoice_requests", "type": "presentation", "parent": "invoices"}' \
  '{"id": "invoice_approvals", "type": "presentation", "parent": "invoices"}' \
  '{"id": "invoice_reports", "type": "presentation", "parent": "invoices"}' \
  '{"id": "hr_onboarding", "type": "app"}' \
  '{"id": "onboarding_forms", "type": "presentation", "parent": "hr_onboarding"}'; do
  call DirectoryService/CreateScope <<JSON
{"tenant": "acme_auto", "scope": $scope}
JSON
done

echo "== users"
for user in ada dan rita sam bea alex rhea; do
  call DirectoryService/CreateSubject <<JSON
{"tenant": "acme_auto", "subject": {"id": "$user"}}
JSON
done

echo "== the tenant's custom roles, each opening chosen presentations"
call DirectoryService/CreateRole <<'JSON'
{"tenant": "acme_auto", "role": {"id": "approver", "title": "Approver",
  "grants": [{"permission": "app:read"},
             {"permission": "presentation:edit", "scopes": ["invoice_approvals"]}],
  "managed_by": "users:assign_roles", "rank": 10, "self_removable": true}}
JSON
call DirectoryService/CreateRole <<'JSON'
{"tenant": "acme_auto", "role": {"id": "requester", "title": "Requester",
  "grants": [{"permission": "app:read"},
             {"permission": "presentation:edit", "scopes": ["invoice_requests"]},
             {"permission": "presentation:read", "scopes": ["invoice_approvals"]}],
  "managed_by": "users:assign_roles", "rank": 10, "self_removable": true}}
JSON

echo "== the first tenant administrator (a system write: no actor yet)"
call MembershipService/ManageMembership <<'JSON'
{"tenant": "acme_auto", "operations": [
  {"assign_role": {"role": "tenant_admin", "principal": {"subject": "ada"}}}
]}
JSON

echo "== ada shares the apps: several roles per user per app, different roles per app"
call MembershipService/ManageMembership <<'JSON'
{"tenant": "acme_auto", "options": {"actor": "ada"}, "operations": [
  {"assign_role": {"role": "designer", "principal": {"subject": "dan"}, "target": {"scope": "invoices"}}},
  {"assign_role": {"role": "release_manager", "principal": {"subject": "rita"}, "target": {"scope": "invoices"}}},
  {"assign_role": {"role": "business_user", "principal": {"subject": "rita"}, "target": {"scope": "invoices"}}},
  {"assign_role": {"role": "support", "principal": {"subject": "sam"}, "target": {"scope": "invoices"}}},
  {"assign_role": {"role": "business_user", "principal": {"subject": "dan"}, "target": {"scope": "hr_onboarding"}}},
  {"assign_role": {"role": "support", "principal": {"subject": "rita"}, "target": {"scope": "hr_onboarding"}}}
]}
JSON

echo "== dan, designer of invoices, adds a business user and the custom-role holders"
call MembershipService/ManageMembership <<'JSON'
{"tenant": "acme_auto", "options": {"actor": "dan"}, "operations": [
  {"assign_role": {"role": "business_user", "principal": {"subject": "bea"}, "target": {"scope": "invoices"}}},
  {"assign_role": {"role": "approver", "principal": {"subject": "alex"}, "target": {"scope": "invoices"}}},
  {"assign_role": {"role": "requester", "principal": {"subject": "rhea"}, "target": {"scope": "invoices"}}}
]}
JSON

echo "== sam (support) adds a business user: business_user is grantable_by users:add_business_users, which support holds"
call MembershipService/ManageMembership <<'JSON'
{"tenant": "acme_auto", "options": {"actor": "sam"}, "operations": [
  {"assign_role": {"role": "business_user", "principal": {"subject": "rhea"}, "target": {"scope": "invoices"}}}
]}
JSON

echo "== sam (support) may not make anyone a designer: that needs users:assign_roles"
refused MembershipService/ManageMembership PermissionDenied <<'JSON'
{"tenant": "acme_auto", "options": {"actor": "sam"}, "operations": [
  {"assign_role": {"role": "designer", "principal": {"subject": "rhea"}, "target": {"scope": "invoices"}}}
]}
JSON

echo "== rita's roles in invoices become exactly {support}, atomically"
call MembershipService/ManageMembership <<'JSON'
{"tenant": "acme_auto", "options": {"actor": "ada"}, "operations": [
  {"replace_roles": {"principals": [{"subject": "rita"}], "target": {"scope": "invoices"}, "roles": ["support"]}}
]}
JSON

echo "== sam and bea become business users of hr_onboarding in one call, then leave it in one call"
call MembershipService/ManageMembership <<'JSON'
{"tenant": "acme_auto", "options": {"actor": "ada"}, "operations": [
  {"replace_roles": {"principals": [{"subject": "sam"}, {"subject": "bea"}], "target": {"scope": "hr_onboarding"}, "roles": ["business_user"]}}
]}
JSON
call MembershipService/ManageMembership <<'JSON'
{"tenant": "acme_auto", "options": {"actor": "ada"}, "operations": [
  {"remove_from_target": {"principals": [{"subject": "sam"}, {"subject": "bea"}], "target": {"scope": "hr_onboarding"}}}
]}
JSON

echo "== rhea leaves invoices herself (every role she has there)"
call MembershipService/ManageMembership <<'JSON'
{"tenant": "acme_auto", "options": {"actor": "rhea"}, "operations": [
  {"remove_from_target": {"principals": [{"subject": "rhea"}], "target": {"scope": "invoices"}}}
]}
JSON

echo "== the users invoices is shared with (ada, the tenant administrator, is not among them)"
show DirectoryService/ListAssignments <<'JSON'
{"tenant": "acme_auto", "target": {"scope": "invoices"}}
JSON

echo "== checks"
for question in \
  'alex presentation:edit invoice_approvals' \
  'alex presentation:edit invoice_requests' \
  'rita vault:manage invoices' \
  'rita vault:read invoices' \
  'dan app:edit invoices' \
  'dan app:edit hr_onboarding' \
  'dan presentation:edit onboarding_forms' \
  'rhea presentation:edit invoice_requests' \
  'ada vault:manage hr_onboarding'; do
  read -r subject permission scope <<<"$question"
  echo "-- may $subject do $permission at $scope?"
  grpcurl -plaintext -emit-defaults -d @ "$addr" authzd.v1.AccessService/CheckAccess <<JSON
{"tenant": "acme_auto", "subject": "$subject", "permission": "$permission", "scope": "$scope"}
JSON
done

echo "-- why may alex not edit invoice_requests?"
show AccessService/CheckAccess <<'JSON'
{"tenant": "acme_auto", "subject": "alex", "permission": "presentation:edit", "scope": "invoice_requests", "explain": true}
JSON
