package server

import (
	"context"
	"fmt"

	"github.com/ssogate/ssogate/page"
	"github.com/ssogate/ssogate/portal"
)

// newPortal builds the HTML pages and the setup portal over the same
// services the API serves; the portal's changes are audited under the
// caller "setup link <id>".
func (s *Server) newPortal() error {
	fsys, pattern := portal.Templates()
	pages, err := page.New(page.Branding{ProductName: s.cfg.Portal.ProductName, SupportURL: s.cfg.Portal.SupportURL},
		fsys, pattern, portal.Funcs())
	if err != nil {
		return fmt.Errorf("pages: %w", err)
	}
	s.pages = pages
	if s.portalLimiter == nil && s.limiter != nil {
		s.portalLimiter = s.limiter.Route("setup")
	}
	s.portal, err = portal.New(portal.Config{
		ExternalURL: s.cfg.ExternalURL,
		Pages:       pages,
		Links:       s.store,
		Connections: connectionService{s: s},
		Logins:      loginService{s: s},
		Audit:       auditService{s: s},
		Events:      s.store,
		Directory:   connectionService{s: s},
		AsLink: func(ctx context.Context, linkID string) context.Context {
			return context.WithValue(ctx, callerKey{}, "setup link "+linkID)
		},
		Record: func(ctx context.Context, typ, connectionID string, detail map[string]any) {
			s.audit(ctx, auditEvent{Type: typ, ConnectionID: connectionID, Detail: detail})
		},
		RequestID:  requestID,
		HTTPClient: s.fetchClient(),
		Limiter:    s.portalLimiter,
		Log:        s.log,
		Now:        s.now,
	})
	return err
}
