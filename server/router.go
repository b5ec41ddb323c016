package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/secrethub/secrethub/server/auth"
	"github.com/secrethub/secrethub/server/fault"
	"github.com/secrethub/secrethub/server/policy"
	"github.com/secrethub/secrethub/server/secrets"
)

// handlerFunc is a route handler: decode, call the domain, encode. A
// returned error is turned into the error response.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// access is how a route is authorized. The zero value is not public and
// has no resource, which the router refuses to register: every route must
// say what it touches.
type access struct {
	// public routes need no token and answer while sealed.
	public bool
	// login routes need no token (they hand one out) but, like everything
	// that is not a public sys/ endpoint, answer only while unsealed;
	// loginMethod names the auth method they log in with, as the audit
	// event and the tokens they issue record it.
	login       bool
	loginMethod string
	// published routes need no token either (CA certificates, CRLs, OCSP
	// are for anyone) and answer only while unsealed: a CRL may need
	// signing, with a key behind the barrier.
	published bool
	// resource names what the request touches, for the policy engine.
	resource func(r *http.Request) (string, error)
	// capability is the operation for non-write routes.
	capability policy.Capability
	// write routes are create when the target does not exist, else update.
	write bool
	// exists tells, for write routes, whether the target exists.
	exists func(ctx context.Context, resource string) (bool, error)
	// sudo routes additionally need the sudo capability.
	sudo bool
}

// route is one entry of the routing table.
type route struct {
	name    string
	methods string // comma separated
	path    string
	access  access
	handle  handlerFunc
}

var (
	read   = policy.Read
	update = policy.Update
	del    = policy.Delete
	list   = policy.List
)

// public is the access of the unauthenticated sys endpoints.
var public = access{public: true}

// loginBy is the access of an auth method's login endpoint.
func loginBy(method string) access { return access{login: true, loginMethod: method} }

// published is the access of the PKI publication endpoints.
var published = access{published: true}

// api is the access of a non-secret endpoint, named by its path after /v1/.
func api(resource string, c policy.Capability) access {
	return access{resource: fixed(resource), capability: c}
}

// readOnly routes change nothing: read or list an existing resource,
// behind a token. Their handler may run while their audit event commits.
func (a access) readOnly() bool {
	return !a.public && !a.login && !a.write && (a.capability == read || a.capability == list)
}

func sudo(a access) access { a.sudo = true; return a }

func fixed(resource string) func(*http.Request) (string, error) {
	return func(*http.Request) (string, error) { return resource, nil }
}

// secretPath names a secret route by its normalized bare path.
func secretPath(r *http.Request) (string, error) {
	return secrets.NormalizePath(mux.Vars(r)["path"])
}

// secretPrefix names a LIST route by its normalized prefix.
func secretPrefix(r *http.Request) (string, error) {
	return secrets.NormalizePrefix(mux.Vars(r)["path"])
}

func (s *Server) secret(c policy.Capability) access {
	return access{resource: secretPath, capability: c}
}

func (s *Server) secretWrite() access {
	return access{resource: secretPath, write: true, exists: s.kv.Exists}
}

// routes is the routing table: every API route and how it is authorized.
func (s *Server) routes() []route {
	const secretVar = "{path:(?s).*}"
	return []route{
		{"sys.health", "GET,HEAD", "/v1/sys/health", public, s.handleHealth},
		{"sys.init-status", "GET", "/v1/sys/init", public, s.handleInitStatus},
		{"sys.init", "POST,PUT", "/v1/sys/init", public, s.handleInit},
		{"sys.seal-status", "GET", "/v1/sys/seal-status", public, s.handleSealStatus},
		{"sys.unseal", "POST,PUT", "/v1/sys/unseal", public, s.handleUnseal},
		{"sys.seal", "POST,PUT", "/v1/sys/seal", sudo(api("sys/seal", update)), s.handleSeal},
		{"sys.rotate", "POST,PUT", "/v1/sys/rotate", sudo(api("sys/rotate", update)), s.handleRotate},
		{"sys.key-status", "GET", "/v1/sys/key-status", api("sys/key-status", read), s.handleKeyStatus},
		{"sys.audit-hash", "POST,PUT", "/v1/sys/audit-hash", api("sys/audit-hash", update), s.handleAuditHash},
		{"sys.audit-events", "GET", "/v1/sys/audit/events", api("sys/audit/events", read), s.handleAuditEvents},
		{"sys.audit-verify", "GET", "/v1/sys/audit/verify", api("sys/audit/verify", read), s.handleAuditVerify},
		{"sys.audit-prune", "POST,PUT", "/v1/sys/audit/prune", sudo(api("sys/audit/prune", update)), s.handleAuditPrune},

		{"auth.admin-login", "POST,PUT", "/v1/auth/admin/login", loginBy(auth.MethodAdmin), s.handleAdminLogin},

		{"approle.login", "POST,PUT", "/v1/auth/approle/login", loginBy(auth.MethodAppRole), s.handleAppRoleLogin},
		{"approle.role-list", "LIST", "/v1/auth/approle/role", api("auth/approle/role", list), s.handleRoleList},
		{"approle.role-read", "GET", "/v1/auth/approle/role/{name}", access{resource: roleResource(""), capability: read}, s.handleRoleRead},
		{"approle.role-write", "POST,PUT", "/v1/auth/approle/role/{name}", access{resource: roleResource(""), write: true, exists: s.roleExists}, s.handleRoleWrite},
		{"approle.role-delete", "DELETE", "/v1/auth/approle/role/{name}", access{resource: roleResource(""), capability: del}, s.handleRoleDelete},
		{"approle.role-id-read", "GET", "/v1/auth/approle/role/{name}/role-id", access{resource: roleResource("/role-id"), capability: read}, s.handleRoleIDRead},
		{"approle.role-id-write", "POST,PUT", "/v1/auth/approle/role/{name}/role-id", access{resource: roleResource("/role-id"), capability: update}, s.handleRoleIDWrite},
		{"approle.secret-id-create", "POST,PUT", "/v1/auth/approle/role/{name}/secret-id", access{resource: roleResource("/secret-id"), capability: update}, s.handleSecretIDCreate},
		{"approle.secret-id-list", "LIST", "/v1/auth/approle/role/{name}/secret-id", access{resource: roleResource("/secret-id"), capability: list}, s.handleSecretIDList},
		{"approle.secret-id-lookup", "POST,PUT", "/v1/auth/approle/role/{name}/secret-id-accessor/lookup", access{resource: roleResource("/secret-id-accessor/lookup"), capability: update}, s.handleSecretIDLookup},
		{"approle.secret-id-destroy", "POST,PUT", "/v1/auth/approle/role/{name}/secret-id-accessor/destroy", access{resource: roleResource("/secret-id-accessor/destroy"), capability: update}, s.handleSecretIDDestroy},

		{"token.create", "POST,PUT", "/v1/auth/token/create", api("auth/token/create", update), s.handleTokenCreate},
		{"token.create-orphan", "POST,PUT", "/v1/auth/token/create-orphan", api("auth/token/create-orphan", update), s.handleTokenCreateOrphan},
		{"token.lookup-self", "GET", "/v1/auth/token/lookup-self", api("auth/token/lookup-self", read), s.handleTokenLookupSelf},
		{"token.lookup", "POST,PUT", "/v1/auth/token/lookup", api("auth/token/lookup", update), s.handleTokenLookup},
		{"token.lookup-accessor", "POST,PUT", "/v1/auth/token/lookup-accessor", api("auth/token/lookup-accessor", update), s.handleTokenLookupAccessor},
		{"token.renew-self", "POST,PUT", "/v1/auth/token/renew-self", api("auth/token/renew-self", update), s.handleTokenRenewSelf},
		{"token.renew", "POST,PUT", "/v1/auth/token/renew", api("auth/token/renew", update), s.handleTokenRenew},
		{"token.renew-accessor", "POST,PUT", "/v1/auth/token/renew-accessor", api("auth/token/renew-accessor", update), s.handleTokenRenewAccessor},
		{"token.revoke-self", "POST,PUT", "/v1/auth/token/revoke-self", api("auth/token/revoke-self", update), s.handleTokenRevokeSelf},
		{"token.revoke", "POST,PUT", "/v1/auth/token/revoke", api("auth/token/revoke", update), s.handleTokenRevoke},
		{"token.revoke-accessor", "POST,PUT", "/v1/auth/token/revoke-accessor", api("auth/token/revoke-accessor", update), s.handleTokenRevokeAccessor},

		{"policy.write", "POST,PUT", "/v1/policies", access{resource: policyResourceFromBody, write: true, exists: s.policyExists}, s.handlePolicyWrite},
		{"policy.list", "GET,LIST", "/v1/policies", api("policies", list), s.handlePolicyList},
		{"policy.simulate", "POST", "/v1/policies/simulate", api("policies/simulate", update), s.handlePolicySimulate},
		{"policy.read", "GET", "/v1/policies/{name}", access{resource: policyResource, capability: read}, s.handlePolicyRead},
		{"policy.put", "POST,PUT", "/v1/policies/{name}", access{resource: policyResource, write: true, exists: s.policyExists}, s.handlePolicyWrite},
		{"policy.delete", "DELETE", "/v1/policies/{name}", access{resource: policyResource, capability: del}, s.handlePolicyDelete},

		{"pki.root-generate", "POST,PUT", "/v1/pki/ca/root/generate", api("pki/ca/root/generate", update), s.handlePKIRootGenerate},
		{"pki.intermediate-generate", "POST,PUT", "/v1/pki/ca/intermediate/generate", api("pki/ca/intermediate/generate", update), s.handlePKIIntermediateGenerate},
		{"pki.intermediate-csr", "POST,PUT", "/v1/pki/ca/intermediate/csr", api("pki/ca/intermediate/csr", update), s.handlePKIIntermediateCSR},
		{"pki.intermediate-set-signed", "POST,PUT", "/v1/pki/ca/intermediate/set-signed", api("pki/ca/intermediate/set-signed", update), s.handlePKISetSigned},
		{"pki.issuer-list", "LIST", "/v1/pki/issuers", api("pki/issuers", list), s.handlePKIIssuerList},
		{"pki.config-issuers-read", "GET", "/v1/pki/config/issuers", api("pki/config/issuers", read), s.handlePKIConfigIssuersRead},
		{"pki.config-issuers-write", "POST,PUT", "/v1/pki/config/issuers", api("pki/config/issuers", update), s.handlePKIConfigIssuersWrite},
		{"pki.config-urls-read", "GET", "/v1/pki/config/urls", api("pki/config/urls", read), s.handlePKIConfigURLsRead},
		{"pki.config-urls-write", "POST,PUT", "/v1/pki/config/urls", api("pki/config/urls", update), s.handlePKIConfigURLsWrite},
		{"pki.role-list", "LIST", "/v1/pki/roles", api("pki/roles", list), s.handlePKIRoleList},
		{"pki.role-read", "GET", "/v1/pki/roles/{name}", access{resource: pkiRoleResource("roles"), capability: read}, s.handlePKIRoleRead},
		{"pki.role-write", "POST,PUT", "/v1/pki/roles/{name}", access{resource: pkiRoleResource("roles"), write: true, exists: s.pkiRoleExists}, s.handlePKIRoleWrite},
		{"pki.role-delete", "DELETE", "/v1/pki/roles/{name}", access{resource: pkiRoleResource("roles"), capability: del}, s.handlePKIRoleDelete},
		{"pki.issue", "POST,PUT", "/v1/pki/issue/{name}", access{resource: pkiRoleResource("issue"), capability: update}, s.handlePKIIssue},
		{"pki.sign", "POST,PUT", "/v1/pki/sign/{name}", access{resource: pkiRoleResource("sign"), capability: update}, s.handlePKISign},
		{"pki.revoke", "POST,PUT", "/v1/pki/revoke", api("pki/revoke", update), s.handlePKIRevoke},
		{"pki.cert-list", "LIST", "/v1/pki/certs", api("pki/certs", list), s.handlePKICertList},
		{"pki.cert-read", "GET", "/v1/pki/cert/{serial}", access{resource: pkiCertResource, capability: read}, s.handlePKICertRead},
		{"pki.tidy", "POST,PUT", "/v1/pki/tidy", api("pki/tidy", update), s.handlePKITidy},
		{"pki.ca-pem", "GET", "/v1/pki/ca/pem", published, s.handlePKICAPEM},
		{"pki.ca-chain", "GET", "/v1/pki/ca_chain", published, s.handlePKICAChain},
		{"pki.crl", "GET", "/v1/pki/crl", published, s.handlePKICRL},
		{"pki.crl-pem", "GET", "/v1/pki/crl/pem", published, s.handlePKICRLPEM},
		{"pki.ocsp-post", "POST", "/v1/pki/ocsp", published, s.handlePKIOCSP},
		{"pki.ocsp-get", "GET", "/v1/pki/ocsp/{request:.+}", published, s.handlePKIOCSP},

		{"kv.list", "LIST", "/v1/secrets/static/" + secretVar, access{resource: secretPrefix, capability: list}, s.handleKVList},
		{"kv.read", "GET", "/v1/secrets/static/" + secretVar, s.secret(read), s.handleKVRead},
		{"kv.write", "POST,PUT", "/v1/secrets/static/" + secretVar, s.secretWrite(), s.handleKVWrite},
		{"kv.delete", "DELETE", "/v1/secrets/static/" + secretVar, s.secret(del), s.handleKVDelete},
		{"kv.metadata-list", "LIST", "/v1/secrets/metadata/" + secretVar, access{resource: secretPrefix, capability: list}, s.handleKVList},
		{"kv.metadata-read", "GET", "/v1/secrets/metadata/" + secretVar, s.secret(read), s.handleKVMetadataRead},
		{"kv.metadata-write", "POST,PUT", "/v1/secrets/metadata/" + secretVar, s.secretWrite(), s.handleKVMetadataWrite},
		{"kv.metadata-delete", "DELETE", "/v1/secrets/metadata/" + secretVar, s.secret(del), s.handleKVMetadataDelete},
		{"kv.delete-versions", "POST,PUT", "/v1/secrets/delete/" + secretVar, s.secret(del), s.handleKVDeleteVersions},
		{"kv.undelete", "POST,PUT", "/v1/secrets/undelete/" + secretVar, s.secret(update), s.handleKVUndelete},
		{"kv.destroy", "POST,PUT", "/v1/secrets/destroy/" + secretVar, s.secret(del), s.handleKVDestroy},
		{"kv.rollback", "POST,PUT", "/v1/secrets/rollback/" + secretVar, s.secret(update), s.handleKVRollback},
	}
}

// buildRouter registers the routing table. A route without a valid access
// entry is a programming error and stops the server from being built.
func (s *Server) buildRouter() (*mux.Router, map[string]access) {
	r := mux.NewRouter()
	// Paths are validated, not silently cleaned: "/v1/secrets/static/a/../b"
	// must be refused, not redirected elsewhere.
	r.SkipClean(true)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.respondError(w, req, fault.New(fault.NotFound, "no API route for "+clip(req.URL.Path)))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.respondError(w, req, methodNotAllowed{method: req.Method, path: clip(req.URL.Path)})
	})
	table := map[string]access{}
	for _, rt := range s.routes() {
		if _, dup := table[rt.name]; dup {
			panic("server: duplicate route name " + rt.name)
		}
		if !rt.access.public && !rt.access.login && !rt.access.published && rt.access.resource == nil {
			panic("server: route " + rt.name + " has no authorization entry")
		}
		if rt.access.login && rt.access.loginMethod == "" {
			panic("server: login route " + rt.name + " names no auth method")
		}
		if rt.access.write && rt.access.exists == nil {
			panic("server: write route " + rt.name + " cannot tell create from update")
		}
		table[rt.name] = rt.access
		r.Handle(rt.path, s.guard(rt.path, rt.access, rt.handle)).Methods(strings.Split(rt.methods, ",")...).Name(rt.name)
	}
	return r, table
}
