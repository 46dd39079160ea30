package scim

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

// Audit event types the service provider writes.
const (
	EventUserProvisioned   = "user.provisioned"
	EventUserUpdated       = "user.updated"
	EventUserDeprovisioned = "user.deprovisioned"
	EventGroupUpdated      = "group.updated"
)

// Store is what the service provider needs of the store.
type Store interface {
	store.Directory
}

// Limiter bounds request rates per client and connection.
type Limiter interface {
	Allow(r *http.Request, connectionID string) (ok bool, retryAfter time.Duration)
}

// Event is an audit event for Hooks.Audit; User or Group says what changed.
type Event struct {
	Type         string
	ConnectionID string
	User         *store.DirectoryUser
	Group        *store.DirectoryGroup
	Detail       map[string]any
}

// Hooks connect the service provider to the rest of ssogate.
type Hooks interface {
	// ConnectionExists reports whether SCIM requests for the connection may
	// be served at all (ErrNotFound-like errors become 404).
	ConnectionExists(ctx context.Context, connectionID string) error
	// Deprovisioned runs after a write left u inactive or deleted
	// (u.DeletedAt set). It must be idempotent.
	Deprovisioned(ctx context.Context, connectionID string, u store.DirectoryUser) error
	// MembershipChanged runs after users left groups (removed, the group
	// deleted or renamed): left maps each user id to the display names of
	// the groups it is no longer in.
	MembershipChanged(ctx context.Context, connectionID string, left map[string][]string) error
	// Audit records an event; it does not fail the request.
	Audit(ctx context.Context, e Event)
	// WithEvent returns ctx carrying e, so that the next store write made
	// with it appends e in the same transaction as its change (store.WithEvents):
	// no user change without its event, no event without its change.
	WithEvent(ctx context.Context, e Event) context.Context
}

// Config configures a Handler.
type Config struct {
	Store Store
	Hooks Hooks
	// Limiter, when set, is asked before each request is served.
	Limiter Limiter
	// MaxBody bounds a request body; default 1 MiB (a group PATCH with
	// 2,000 members is about 150 KiB).
	MaxBody int64
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
	Log  *slog.Logger
}

// Handler serves /scim/v2/{connection_id}/...
type Handler struct {
	cfg Config
	mux *http.ServeMux
}

// Prefix is where the Handler's routes live.
const Prefix = "/scim/v2/"

// BaseURL is a connection's SCIM base URL for an IdP admin to paste.
func BaseURL(externalURL, connectionID string) string {
	return strings.TrimSuffix(externalURL, "/") + Prefix + connectionID
}

// New validates cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("scim: Config.Store is required")
	}
	if cfg.Hooks == nil {
		return nil, errors.New("scim: Config.Hooks is required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	p := Prefix + "{connection_id}/"
	routes := map[string]func(*request) error{
		"GET " + p + "Users":                 h.listUsers,
		"POST " + p + "Users":                h.createUser,
		"GET " + p + "Users/{id}":            h.getUser,
		"PUT " + p + "Users/{id}":            h.replaceUser,
		"PATCH " + p + "Users/{id}":          h.patchUser,
		"DELETE " + p + "Users/{id}":         h.deleteUser,
		"GET " + p + "Groups":                h.listGroups,
		"POST " + p + "Groups":               h.createGroup,
		"GET " + p + "Groups/{id}":           h.getGroup,
		"PUT " + p + "Groups/{id}":           h.replaceGroup,
		"PATCH " + p + "Groups/{id}":         h.patchGroup,
		"DELETE " + p + "Groups/{id}":        h.deleteGroup,
		"GET " + p + "ServiceProviderConfig": h.serviceProviderConfig,
		"GET " + p + "ResourceTypes":         h.resourceTypes,
		"GET " + p + "ResourceTypes/{id}":    h.resourceType,
		"GET " + p + "Schemas":               h.schemas,
		"GET " + p + "Schemas/{id}":          h.schema,
	}
	for pattern, fn := range routes {
		h.mux.Handle(pattern, h.serve(fn))
	}
	// Anything else under a connection: a SCIM 404, still authenticated.
	h.mux.Handle(p, h.serve(func(*request) error {
		return &Error{Status: http.StatusNotFound, Detail: "no such SCIM endpoint"}
	}))
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// request is one SCIM request being served.
type request struct {
	ctx  context.Context
	w    http.ResponseWriter
	r    *http.Request
	conn string
	body []byte
}

// Error is a SCIM error response (RFC 7644 section 3.12).
type Error struct {
	Status   int
	ScimType string
	Detail   string
}

func (e *Error) Error() string {
	if e.ScimType != "" {
		return fmt.Sprintf("scim %d %s: %s", e.Status, e.ScimType, e.Detail)
	}
	return fmt.Sprintf("scim %d: %s", e.Status, e.Detail)
}

func badRequest(scimType, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}

const (
	schemaError        = "urn:ietf:params:scim:api:messages:2.0:Error"
	schemaListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	schemaPatchOp      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	mediaType          = "application/scim+json"
)

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status   int
	scimType string
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// serve authenticates, bounds, runs fn and logs the request.
func (h *Handler) serve(fn func(*request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn := r.PathValue("connection_id")
		sw := &statusWriter{ResponseWriter: w}
		err := h.handle(sw, r, conn, fn)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				h.cfg.Log.ErrorContext(r.Context(), "scim request failed", "connection_id", conn, "method", r.Method,
					"path", r.URL.Path, "error", err)
				se = &Error{Status: http.StatusInternalServerError, Detail: "internal error; the request may be retried"}
			}
			sw.scimType = se.ScimType
			writeError(sw, se)
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		if sw.status == http.StatusUnauthorized {
			return // nobody we know: nothing to log against a connection
		}
		path := strings.TrimPrefix(r.URL.Path, Prefix+conn)
		if err := h.cfg.Store.AppendScimRequest(context.WithoutCancel(r.Context()), store.ScimRequest{ConnectionID: conn,
			Time: h.cfg.Now(), Method: r.Method, Path: path, Status: sw.status, ScimType: sw.scimType}); err != nil {
			h.cfg.Log.WarnContext(r.Context(), "scim request log append failed", "connection_id", conn, "error", err)
		}
	})
}

func (h *Handler) handle(w http.ResponseWriter, r *http.Request, conn string, fn func(*request) error) error {
	if err := h.authenticate(r, conn); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scim"`)
		return err
	}
	if err := h.cfg.Hooks.ConnectionExists(r.Context(), conn); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &Error{Status: http.StatusNotFound, Detail: "no such connection"}
		}
		return err
	}
	if h.cfg.Limiter != nil {
		if ok, retry := h.cfg.Limiter.Allow(r, conn); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retry.Round(time.Second)/time.Second))))
			return &Error{Status: http.StatusTooManyRequests, Detail: "too many requests; retry later"}
		}
	}
	req := &request{ctx: r.Context(), w: w, r: r, conn: conn}
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodDelete {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return &Error{Status: http.StatusRequestEntityTooLarge,
					Detail: fmt.Sprintf("request body is larger than %d bytes; send fewer members per request", h.cfg.MaxBody)}
			}
			return badRequest("invalidSyntax", "reading the request body: %v", err)
		}
		req.body = body
	}
	return fn(req)
}

func writeError(w http.ResponseWriter, e *Error) {
	body := map[string]any{"schemas": []string{schemaError}, "status": strconv.Itoa(e.Status), "detail": e.Detail}
	if e.ScimType != "" {
		body["scimType"] = e.ScimType
	}
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", mediaType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeObject parses a JSON object body, keeping numbers as json.Number.
func (rq *request) decodeObject() (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(rq.body)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, badRequest("invalidSyntax", "the body is not a JSON object")
	}
	return m, nil
}

// baseURL is the request's SCIM base, for meta.location.
func (rq *request) baseURL() string {
	scheme := "https"
	if rq.r.TLS == nil && !strings.EqualFold(rq.r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "http"
	}
	return scheme + "://" + rq.r.Host + Prefix + rq.conn
}

// etag is the weak ETag of a resource version.
func etag(version int64) string { return fmt.Sprintf(`W/"%d"`, version) }

// checkIfMatch refuses a write whose If-Match names another version.
func (rq *request) checkIfMatch(version int64) error {
	im := rq.r.Header.Get("If-Match")
	if im == "" || im == "*" {
		return nil
	}
	for tag := range strings.SplitSeq(im, ",") {
		if strings.TrimSpace(tag) == etag(version) {
			return nil
		}
	}
	return &Error{Status: http.StatusPreconditionFailed,
		Detail: fmt.Sprintf("If-Match %s does not match the current version %s; read the resource again", im, etag(version))}
}

// storeError maps store errors on a resource.
func storeError(kind, id string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Detail: fmt.Sprintf("%s %q not found", kind, id)}
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, ScimType: "uniqueness",
			Detail: fmt.Sprintf("another %s already has this userName or externalId", kind)}
	}
	return err
}

// newID returns a random resource or token id.
func newID(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return fmt.Sprintf("%x", b), nil
}

// paging reads startIndex (1-based) and count.
func paging(r *http.Request) (offset, limit int, err error) {
	q := r.URL.Query()
	start, count := 1, store.DefaultPageSize*2
	if v := q.Get("startIndex"); v != "" {
		if start, err = strconv.Atoi(v); err != nil {
			return 0, 0, badRequest("invalidValue", "startIndex %q is not an integer", v)
		}
		start = max(start, 1)
	}
	if v := q.Get("count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil {
			return 0, 0, badRequest("invalidValue", "count %q is not an integer", v)
		}
		count = min(max(count, 0), store.MaxPageSize)
	}
	return start - 1, count, nil
}

func listResponse(offset int, total int, resources []any) map[string]any {
	if resources == nil {
		resources = []any{}
	}
	return map[string]any{"schemas": []string{schemaListResponse}, "totalResults": total,
		"startIndex": offset + 1, "itemsPerPage": len(resources), "Resources": resources}
}
