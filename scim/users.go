package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

// userRecord builds the store's view of a user resource.
func userRecord(conn, id string, res resource) (store.DirectoryUser, error) {
	if strings.TrimSpace(res.str("userName")) == "" {
		return store.DirectoryUser{}, badRequest("invalidValue", "userName is required")
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return store.DirectoryUser{}, fmt.Errorf("encode user: %w", err)
	}
	return store.DirectoryUser{ConnectionID: conn, ID: id, UserName: res.str("userName"), ExternalID: res.str("externalId"),
		Email: res.primaryEmail(), DisplayName: res.str("displayName"), Active: res.active(), Resource: raw}, nil
}

func decodeResource(raw []byte) resource {
	res := resource{}
	if len(raw) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		_ = dec.Decode(&res)
	}
	return res
}

// renderUser is the SCIM representation of a stored user.
func (rq *request) renderUser(u store.DirectoryUser, groups []store.DirectoryGroup) map[string]any {
	out := map[string]any{}
	for k, v := range decodeResource(u.Resource) {
		out[k] = v
	}
	schemas := []string{SchemaUser}
	if _, ok := out[SchemaEnterprise]; ok {
		schemas = append(schemas, SchemaEnterprise)
	}
	out["schemas"] = schemas
	out["id"] = u.ID
	out["active"] = u.Active
	if groups != nil {
		list := make([]any, 0, len(groups))
		for _, g := range groups {
			list = append(list, map[string]any{"value": g.ID, "display": g.DisplayName,
				"$ref": rq.baseURL() + "/Groups/" + g.ID})
		}
		out["groups"] = list
	}
	out["meta"] = map[string]any{"resourceType": "User", "created": u.CreatedAt.Format(time.RFC3339Nano),
		"lastModified": u.UpdatedAt.Format(time.RFC3339Nano), "location": rq.baseURL() + "/Users/" + u.ID,
		"version": etag(u.Version)}
	return out
}

func (rq *request) writeUser(status int, u store.DirectoryUser, groups []store.DirectoryGroup) {
	rq.w.Header().Set("ETag", etag(u.Version))
	if status == http.StatusCreated {
		rq.w.Header().Set("Location", rq.baseURL()+"/Users/"+u.ID)
	}
	writeJSON(rq.w, status, rq.renderUser(u, groups))
}

func (h *Handler) createUser(rq *request) error {
	in, err := rq.decodeObject()
	if err != nil {
		return err
	}
	res, err := normalize(in, &userSchema, &enterpriseSchema)
	if err != nil {
		return err
	}
	id, err := newID(h.cfg.Rand, 16)
	if err != nil {
		return err
	}
	u, err := userRecord(rq.conn, id, res)
	if err != nil {
		return err
	}
	if err := h.cfg.Store.CreateDirectoryUser(rq.ctx, u); err != nil {
		return storeError("user", u.UserName, err)
	}
	u, err = h.cfg.Store.GetDirectoryUser(rq.ctx, rq.conn, id)
	if err != nil {
		return err
	}
	h.cfg.Hooks.Audit(rq.ctx, Event{Type: EventUserProvisioned, ConnectionID: rq.conn, User: &u,
		Detail: map[string]any{"user_id": u.ID, "active": u.Active}})
	if !u.Active {
		if err := h.cfg.Hooks.Deprovisioned(rq.ctx, rq.conn, u); err != nil {
			return err
		}
	}
	rq.writeUser(http.StatusCreated, u, []store.DirectoryGroup{})
	return nil
}

func (h *Handler) getUser(rq *request) error {
	u, err := h.cfg.Store.GetDirectoryUser(rq.ctx, rq.conn, rq.r.PathValue("id"))
	if err != nil {
		return storeError("user", rq.r.PathValue("id"), err)
	}
	groups, _, err := h.cfg.Store.ListDirectoryGroups(rq.ctx, store.DirectoryGroupQuery{ConnectionID: rq.conn, MemberID: u.ID,
		Limit: store.MaxPageSize})
	if err != nil {
		return err
	}
	if groups == nil {
		groups = []store.DirectoryGroup{}
	}
	rq.writeUser(http.StatusOK, u, groups)
	return nil
}

func (h *Handler) listUsers(rq *request) error {
	f, err := parseListFilter(rq.r.URL.Query().Get("filter"), false)
	if err != nil {
		return err
	}
	offset, limit, err := paging(rq.r)
	if err != nil {
		return err
	}
	var users []store.DirectoryUser
	total := 0
	if f.id != "" {
		u, err := h.cfg.Store.GetDirectoryUser(rq.ctx, rq.conn, f.id)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		case (f.userName == "" || strings.EqualFold(f.userName, u.UserName)) &&
			(f.externalID == "" || f.externalID == u.ExternalID) && (f.email == "" || strings.EqualFold(f.email, u.Email)):
			total = 1
			if offset == 0 && limit > 0 {
				users = append(users, u)
			}
		}
	} else if limit > 0 {
		users, total, err = h.cfg.Store.ListDirectoryUsers(rq.ctx, store.DirectoryUserQuery{ConnectionID: rq.conn,
			UserName: f.userName, ExternalID: f.externalID, Email: f.email, Offset: offset, Limit: limit})
		if err != nil {
			return err
		}
	} else {
		_, total, err = h.cfg.Store.ListDirectoryUsers(rq.ctx, store.DirectoryUserQuery{ConnectionID: rq.conn,
			UserName: f.userName, ExternalID: f.externalID, Email: f.email, Limit: 1})
		if err != nil {
			return err
		}
	}
	resources := make([]any, 0, len(users))
	for _, u := range users {
		resources = append(resources, rq.renderUser(u, nil))
	}
	writeJSON(rq.w, http.StatusOK, listResponse(offset, total, resources))
	return nil
}

// updateUser reads, changes and writes a user, retrying when another
// writer got in between (unless the client pinned a version with If-Match),
// then runs the hooks and audits.
func (h *Handler) updateUser(rq *request, change func(res resource) (resource, error)) error {
	id := rq.r.PathValue("id")
	for attempt := 0; ; attempt++ {
		before, err := h.cfg.Store.GetDirectoryUser(rq.ctx, rq.conn, id)
		if err != nil {
			return storeError("user", id, err)
		}
		if err := rq.checkIfMatch(before.Version); err != nil {
			return err
		}
		res, err := change(decodeResource(before.Resource))
		if err != nil {
			return err
		}
		u, err := userRecord(rq.conn, id, res)
		if err != nil {
			return err
		}
		typ := EventUserUpdated
		if before.Active && !u.Active {
			typ = EventUserDeprovisioned
		}
		detail := map[string]any{"user_id": id, "active": u.Active}
		if before.UserName != u.UserName {
			detail["previous_user_name"] = before.UserName
		}
		ctx := h.cfg.Hooks.WithEvent(rq.ctx, Event{Type: typ, ConnectionID: rq.conn, User: &u, Detail: detail})
		after, err := h.cfg.Store.UpdateDirectoryUser(ctx, u, before.Version)
		if errors.Is(err, store.ErrConflict) && after.Version != before.Version {
			if rq.r.Header.Get("If-Match") != "" && rq.r.Header.Get("If-Match") != "*" {
				return &Error{Status: http.StatusPreconditionFailed, Detail: "the user changed while this request was served; read it again"}
			}
			if attempt < 5 {
				continue
			}
		}
		if err != nil {
			return storeError("user", u.UserName, err)
		}
		if !after.Active {
			if err := h.cfg.Hooks.Deprovisioned(rq.ctx, rq.conn, after); err != nil {
				return err
			}
		}
		rq.writeUser(http.StatusOK, after, nil)
		return nil
	}
}

func (h *Handler) replaceUser(rq *request) error {
	in, err := rq.decodeObject()
	if err != nil {
		return err
	}
	res, err := normalize(in, &userSchema, &enterpriseSchema)
	if err != nil {
		return err
	}
	return h.updateUser(rq, func(resource) (resource, error) { return res, nil })
}

func (h *Handler) patchUser(rq *request) error {
	ops, err := parsePatch(rq.body)
	if err != nil {
		return err
	}
	return h.updateUser(rq, func(res resource) (resource, error) {
		return res, applyPatch(res, &userSchema, &enterpriseSchema, ops)
	})
}

func (h *Handler) deleteUser(rq *request) error {
	id := rq.r.PathValue("id")
	cur, err := h.cfg.Store.GetDirectoryUser(rq.ctx, rq.conn, id)
	if err != nil {
		return storeError("user", id, err)
	}
	if err := rq.checkIfMatch(cur.Version); err != nil {
		return err
	}
	now := h.cfg.Now()
	gone := cur
	gone.Active, gone.DeletedAt = false, now
	ctx := h.cfg.Hooks.WithEvent(rq.ctx, Event{Type: EventUserDeprovisioned, ConnectionID: rq.conn, User: &gone,
		Detail: map[string]any{"user_id": id, "deleted": true}})
	before, err := h.cfg.Store.DeleteDirectoryUser(ctx, rq.conn, id, now)
	if err != nil {
		return storeError("user", id, err)
	}
	before.Active, before.DeletedAt = false, now
	if err := h.cfg.Hooks.Deprovisioned(rq.ctx, rq.conn, before); err != nil {
		return err
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}
