package server

import (
	"testing"

	ssogatev1 "github.com/ssogate/ssogate/gen/ssogate/v1"
	"github.com/ssogate/ssogate/saml"
)

// TestReasonsMatchAPIEnum keeps saml.Reasons and the API's RejectionReason
// in one order, so the by-name mapping of audit events finds every reason.
func TestReasonsMatchAPIEnum(t *testing.T) {
	if got, want := len(saml.Reasons), len(ssogatev1.RejectionReason_name)-1; got != want {
		t.Errorf("saml has %d reasons, the API enum %d", got, want)
	}
	// Numbers are handed out per feature, so the enum may have gaps while
	// features land; the order must still match.
	prev := int32(0)
	for i, r := range saml.Reasons {
		v, ok := ssogatev1.RejectionReason_value["REJECTION_REASON_"+string(r)]
		if !ok || v <= prev {
			t.Errorf("saml.Reasons[%d] = %s: API value %d (found %v), want one above %d", i, r, v, ok, prev)
		}
		prev = v
	}
}
