package portal

import (
	"context"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/page"
)

// Directory is the part of the ConnectionService the SCIM step uses. Every
// call names the link's connection; the portal never names another.
type Directory interface {
	CreateScimToken(ctx context.Context, req *ssogatev1.CreateScimTokenRequest) (*ssogatev1.CreateScimTokenResponse, error)
	ListScimTokens(ctx context.Context, req *ssogatev1.ListScimTokensRequest) (*ssogatev1.ListScimTokensResponse, error)
	RevokeScimToken(ctx context.Context, req *ssogatev1.RevokeScimTokenRequest) (*ssogatev1.RevokeScimTokenResponse, error)
	ListScimRequests(ctx context.Context, req *ssogatev1.ListScimRequestsRequest) (*ssogatev1.ListScimRequestsResponse, error)
}

// recentSCIMRequests is how many SCIM requests the pages list.
const recentSCIMRequests = 20

// scimView is the SCIM step's data.
type scimView struct {
	BaseURL  string
	Secret   string
	Tokens   []scimTokenView
	Live     int
	Requests []scimRequestView
}

type scimTokenView struct {
	ID               string
	Created, Revoked time.Time
}

type scimRequestView struct {
	Time                   time.Time
	Method, Path, ScimType string
	Status                 int32
	Failed                 bool
}

// scimState fills v.SCIM from the directory; a failure is the page's error.
func (p *Portal) scimState(s *sess, v *view) {
	v.SCIM.BaseURL = s.conn.GetScimBaseUrl()
	toks, err := p.cfg.Directory.ListScimTokens(s.ctx, &ssogatev1.ListScimTokensRequest{ConnectionId: s.conn.Id})
	if err != nil {
		_, msg := apiError(err)
		v.Error = "The SCIM tokens are unavailable: " + msg
		return
	}
	for _, t := range toks.ScimTokens {
		tv := scimTokenView{ID: t.Id, Created: t.GetCreateTime().AsTime()}
		if t.RevokeTime != nil {
			tv.Revoked = t.RevokeTime.AsTime()
		} else {
			v.SCIM.Live++
		}
		v.SCIM.Tokens = append(v.SCIM.Tokens, tv)
	}
	reqs, err := p.cfg.Directory.ListScimRequests(s.ctx, &ssogatev1.ListScimRequestsRequest{ConnectionId: s.conn.Id, PageSize: recentSCIMRequests})
	if err != nil {
		_, msg := apiError(err)
		v.Error = "The SCIM request log is unavailable: " + msg
		return
	}
	for _, r := range reqs.Requests {
		v.SCIM.Requests = append(v.SCIM.Requests, scimRequestView{Time: r.GetTime().AsTime(), Method: r.Method, Path: r.Path,
			ScimType: r.ScimType, Status: r.Status, Failed: r.Status >= 400})
	}
}

const scimTitle = "Directory sync (SCIM)"

func (p *Portal) scimPage(w http.ResponseWriter, r *http.Request, s *sess) {
	v := p.view(s, "scim")
	p.scimState(s, v)
	switch r.URL.Query().Get("done") {
	case "revoked":
		v.Notice = "Token revoked: your IdP can no longer sync with it. Make a new one if it still needs to."
	}
	p.render(w, http.StatusOK, "scim", scimTitle, v, page.Options{})
}

// scimCreate makes a token for the link's connection and shows its secret
// in this one answer (never in an address, a log or the store).
func (p *Portal) scimCreate(w http.ResponseWriter, r *http.Request, s *sess) {
	resp, err := p.cfg.Directory.CreateScimToken(s.ctx, &ssogatev1.CreateScimTokenRequest{ConnectionId: s.conn.Id})
	v := p.view(s, "scim")
	if err != nil {
		_, msg := apiError(err)
		p.scimState(s, v)
		v.Error = "No token was made: " + msg
		p.render(w, http.StatusInternalServerError, "scim", scimTitle, v, page.Options{})
		return
	}
	p.scimState(s, v)
	v.SCIM.Secret = resp.Secret
	v.Notice = "Token made. Copy it into your IdP now: it is shown only this once."
	p.render(w, http.StatusOK, "scim", scimTitle, v, page.Options{})
}

func (p *Portal) scimRevoke(w http.ResponseWriter, r *http.Request, s *sess) {
	id := strings.TrimSpace(r.PostFormValue("token_id"))
	_, err := p.cfg.Directory.RevokeScimToken(s.ctx, &ssogatev1.RevokeScimTokenRequest{ConnectionId: s.conn.Id, ScimTokenId: id})
	if err != nil {
		v := p.view(s, "scim")
		p.scimState(s, v)
		code, msg := apiError(err)
		status := http.StatusInternalServerError
		v.Error = "The token was not revoked: " + msg
		if code == codes.NotFound || code == codes.InvalidArgument {
			status = http.StatusNotFound
			v.Error = "There is no such token on this connection (it may be revoked already). Reload the page."
		}
		p.render(w, status, "scim", scimTitle, v, page.Options{})
		return
	}
	http.Redirect(w, r, Prefix+"scim?done=revoked", http.StatusSeeOther)
}
