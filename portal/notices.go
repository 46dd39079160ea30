package portal

import (
	"context"
	"time"

	"github.com/ssogate/ssogate/events"
)

// NoticeTypes are the events the status page shows the IdP admin: what
// threatens sign-ins unless they act.
var NoticeTypes = []string{"certificate.expiring", "certificate.rotated", "metadata.refresh_failed", "sp_certificate.expiring"}

// recentNotices is how many notices the status page lists.
const recentNotices = 10

type noticeView struct {
	Time                      time.Time
	Label, Class, Message, Do string
}

// notices lists the connection's recent notices, newest first; none when
// the portal has no event log.
func (p *Portal) notices(ctx context.Context, s *sess) ([]noticeView, error) {
	if p.cfg.Events == nil {
		return nil, nil
	}
	recent, err := events.Recent(ctx, p.cfg.Events, s.conn.Id, NoticeTypes, recentNotices)
	if err != nil {
		return nil, err
	}
	byURL := s.conn.GetIdentityProvider().GetMetadataUrl() != ""
	out := make([]noticeView, 0, len(recent))
	for _, e := range recent {
		n := noticeView{Time: e.Time, Message: e.Message}
		switch e.Type {
		case "certificate.expiring":
			n.Label, n.Class = "Certificate expiring", "warn"
			n.Do = "Create the successor signing certificate in your IdP's SAML app now. "
			if byURL {
				n.Do += "We read your metadata URL every hour and pick it up; sign-ins stop when the old one expires."
			} else {
				n.Do += "Then give us the new metadata on the Metadata step; sign-ins stop when the old one expires."
			}
		case "certificate.rotated":
			n.Label, n.Class = "Certificate changed", "warn"
			n.Do = "Nothing, if your team changed it: sign-ins are verified with the new certificate. If nobody did, tell your security team."
		case "sp_certificate.expiring":
			n.Label, n.Class = "Our certificate expiring", "warn"
			n.Do = "Nothing, if your IdP reads our SP metadata: our next certificate appears there before this one expires. " +
				"If you pinned our certificate in your IdP's SAML app, download our SP metadata again (step 2) when the next one appears and add it, keeping both until the switch."
		case "metadata.refresh_failed":
			n.Label, n.Class = "Metadata refresh failed", "bad"
			n.Do = "Open the metadata URL from the IdP's SAML app again; if it changed, give us the new one on the Metadata step. The last good metadata stays in use meanwhile."
		default:
			continue
		}
		out = append(out, n)
	}
	return out, nil
}
