package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ssogate/ssogate/consent"
	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/saml"
	"github.com/ssogate/ssogate/store"
)

// routeContinue is the consent button's route (rate-limit label).
const routeContinue = "continue"

// pendingConsent prefixes the Data of a pending request that is an
// IdP-initiated login waiting on the consent page, not an AuthnRequest.
const pendingConsent = "consent:"

// wantsConsent reports whether IdP-initiated logins of c land on the
// consent page (the default) rather than being issued at once.
func wantsConsent(c *ssogatev1.Connection) bool {
	return c.IdpInitiatedConsent == nil || *c.IdpInitiatedConsent
}

// consentStore keeps pending consents as pending requests: single-use
// across replicas through ConsumePendingRequest.
type consentStore struct {
	st  store.Store
	now func() time.Time
}

func (c consentStore) PutConsent(ctx context.Context, connectionID, id string, binding, payload []byte, expiresAt time.Time) error {
	now := c.now()
	if !now.Before(expiresAt) {
		now = expiresAt.Add(-time.Second)
	}
	return c.st.PutPendingRequest(ctx, store.PendingRequest{ID: id, ConnectionID: connectionID, State: hex.EncodeToString(binding),
		Data: append([]byte(pendingConsent), payload...), CreatedAt: now, ExpiresAt: expiresAt})
}

func (c consentStore) ConsumeConsent(ctx context.Context, connectionID, id string, now time.Time) ([]byte, []byte, error) {
	p, err := c.st.ConsumePendingRequest(ctx, connectionID, id, now)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConsumed), errors.Is(err, store.ErrExpired):
		return nil, nil, fmt.Errorf("%w: %v", consent.ErrRefused, err)
	case err != nil:
		return nil, nil, err
	case !strings.HasPrefix(string(p.Data), pendingConsent):
		return nil, nil, fmt.Errorf("%w: %s is no pending consent", consent.ErrRefused, id)
	}
	binding, err := hex.DecodeString(p.State)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: stored binding unreadable", consent.ErrRefused)
	}
	return binding, p.Data[len(pendingConsent):], nil
}

// consentPayload is the verified login that waits for the button.
type consentPayload struct {
	Identity *saml.Identity `json:"identity"`
	Roles    []string       `json:"roles"`
	ReturnTo string         `json:"return_to"`
}

func consentCookiePath(connectionID string) string { return "/saml/" + connectionID + "/" }

// askConsent shows the interstitial for a verified IdP-initiated login.
func (s *Server) askConsent(w http.ResponseWriter, r *http.Request, res *loginResult, returnTo string) {
	ctx := r.Context()
	payload, err := json.Marshal(consentPayload{Identity: res.identity, Roles: res.roles, ReturnTo: returnTo})
	if err != nil {
		s.acsFailure(w, r, res.conn.msg, fmt.Errorf("encode pending consent: %w", err))
		return
	}
	app, then := returnTo, ""
	if u, err := url.Parse(returnTo); err == nil && u.Host != "" {
		app, then = u.Host, u.Scheme+"://"+u.Host
	}
	user := res.identity.Mapped.Email
	if user == "" {
		user = res.identity.NameID
	}
	id := res.conn.msg.Id
	err = s.consent.Ask(ctx, w, consent.Prompt{ConnectionID: id, App: app, User: user,
		Action: "/saml/" + id + "/continue", Then: then, Payload: payload}, consentCookiePath(id))
	if err != nil {
		s.acsFailure(w, r, res.conn.msg, err)
	}
}

// handleContinue is the consent page's button: it issues the waiting
// login once, to the browser the page was shown to.
func (s *Server) handleContinue(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	c, err := s.registry.get(ctx, r.PathValue("connection_id"))
	if err != nil {
		s.errorPage(w, r, http.StatusNotFound, "This sign-in address is not known.")
		return
	}
	raw, err := s.consent.Confirm(ctx, w, r, c.msg.Id, consentCookiePath(c.msg.Id))
	if err != nil {
		if errors.Is(err, consent.ErrRefused) {
			s.rejectLogin(ctx, c.msg, saml.Rejectf(saml.ReasonIdPInitiatedForbidden,
				"the continue step of an IdP-initiated login was refused (%v); sign in again from the IdP", err))
			s.errorPage(w, r, http.StatusBadRequest, "This sign-in page has expired or was already used. Start again from your identity provider's portal.")
			return
		}
		s.acsFailure(w, r, c.msg, err)
		return
	}
	var p consentPayload
	if err := json.Unmarshal(raw, &p); err != nil || p.Identity == nil {
		s.acsFailure(w, r, c.msg, fmt.Errorf("decode pending consent: %v", err))
		return
	}
	// The connection may have changed since the page was shown.
	if err := loginAllowed(c.msg, false); err != nil {
		s.acsFailure(w, r, c.msg, err)
		return
	}
	if !c.msg.AllowIdpInitiated {
		s.acsFailure(w, r, c.msg, saml.Rejectf(saml.ReasonIdPInitiatedForbidden, "connection %q no longer accepts IdP-initiated logins", c.msg.Id))
		return
	}
	s.issueLogin(w, r, &loginResult{conn: c, identity: p.Identity, roles: p.Roles}, p.ReturnTo, "")
}
