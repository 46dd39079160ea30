package scim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ssogate/ssogate/store"
)

// memberIDs takes the member ids out of a group resource: members live in
// the store's membership table, not in the resource.
func memberIDs(res resource) []string {
	list, _ := res["members"].([]any)
	delete(res, "members")
	ids := make([]string, 0, len(list))
	for _, e := range list {
		m, _ := e.(map[string]any)
		if v, ok := m["value"].(string); ok && v != "" {
			ids = append(ids, v)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func groupRecord(conn, id string, res resource) (store.DirectoryGroup, error) {
	if strings.TrimSpace(res.str("displayName")) == "" {
		return store.DirectoryGroup{}, badRequest("invalidValue", "displayName is required")
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return store.DirectoryGroup{}, fmt.Errorf("encode group: %w", err)
	}
	return store.DirectoryGroup{ConnectionID: conn, ID: id, DisplayName: res.str("displayName"),
		ExternalID: res.str("externalId"), Resource: raw}, nil
}

// wantMembers reports whether the response should list members
// (excludedAttributes=members, as Entra ID asks, leaves them out).
func (rq *request) wantMembers() bool {
	for a := range strings.SplitSeq(rq.r.URL.Query().Get("excludedAttributes"), ",") {
		if strings.EqualFold(strings.TrimSpace(a), "members") {
			return false
		}
	}
	return true
}

func (rq *request) renderGroup(g store.DirectoryGroup, members []string) map[string]any {
	out := map[string]any{}
	for k, v := range decodeResource(g.Resource) {
		out[k] = v
	}
	out["schemas"] = []string{SchemaGroup}
	out["id"] = g.ID
	if members != nil {
		list := make([]any, 0, len(members))
		for _, id := range members {
			list = append(list, map[string]any{"value": id, "$ref": rq.baseURL() + "/Users/" + id, "type": "User"})
		}
		out["members"] = list
	}
	out["meta"] = map[string]any{"resourceType": "Group", "created": g.CreatedAt.Format(time.RFC3339Nano),
		"lastModified": g.UpdatedAt.Format(time.RFC3339Nano), "location": rq.baseURL() + "/Groups/" + g.ID,
		"version": etag(g.Version)}
	return out
}

// writeGroup answers with the group as stored now.
func (h *Handler) writeGroup(rq *request, status int, id string) error {
	g, err := h.cfg.Store.GetDirectoryGroup(rq.ctx, rq.conn, id)
	if err != nil {
		return storeError("group", id, err)
	}
	var members []string
	if rq.wantMembers() {
		if members, err = h.cfg.Store.GroupMembers(rq.ctx, rq.conn, id); err != nil {
			return err
		}
		if members == nil {
			members = []string{}
		}
	}
	rq.w.Header().Set("ETag", etag(g.Version))
	if status == http.StatusCreated {
		rq.w.Header().Set("Location", rq.baseURL()+"/Groups/"+g.ID)
	}
	writeJSON(rq.w, status, rq.renderGroup(g, members))
	return nil
}

func (h *Handler) createGroup(rq *request) error {
	in, err := rq.decodeObject()
	if err != nil {
		return err
	}
	res, err := normalize(in, &groupSchema, nil)
	if err != nil {
		return err
	}
	members := memberIDs(res)
	id, err := newID(h.cfg.Rand, 16)
	if err != nil {
		return err
	}
	g, err := groupRecord(rq.conn, id, res)
	if err != nil {
		return err
	}
	if err := h.cfg.Store.CreateDirectoryGroup(rq.ctx, g, members); err != nil {
		return storeError("group", id, err)
	}
	h.cfg.Hooks.Audit(rq.ctx, Event{Type: EventGroupUpdated, ConnectionID: rq.conn, Group: &g,
		Detail: map[string]any{"group_id": id, "display_name": g.DisplayName, "created": true, "added": len(members)}})
	return h.writeGroup(rq, http.StatusCreated, id)
}

func (h *Handler) getGroup(rq *request) error {
	return h.writeGroup(rq, http.StatusOK, rq.r.PathValue("id"))
}

func (h *Handler) listGroups(rq *request) error {
	f, err := parseListFilter(rq.r.URL.Query().Get("filter"), true)
	if err != nil {
		return err
	}
	offset, limit, err := paging(rq.r)
	if err != nil {
		return err
	}
	q := store.DirectoryGroupQuery{ConnectionID: rq.conn, DisplayName: f.displayName, ExternalID: f.externalID,
		MemberID: f.member, Offset: offset, Limit: max(limit, 1)}
	var groups []store.DirectoryGroup
	total := 0
	if f.id != "" {
		// Entra ID checks membership with id eq "…" and members[value eq "…"].
		all, _, err := h.cfg.Store.ListDirectoryGroups(rq.ctx, store.DirectoryGroupQuery{ConnectionID: rq.conn,
			DisplayName: f.displayName, ExternalID: f.externalID, MemberID: f.member, Limit: store.MaxPageSize})
		if err != nil {
			return err
		}
		for _, g := range all {
			if g.ID == f.id {
				total = 1
				if offset == 0 && limit > 0 {
					groups = append(groups, g)
				}
			}
		}
	} else {
		groups, total, err = h.cfg.Store.ListDirectoryGroups(rq.ctx, q)
		if err != nil {
			return err
		}
		if limit == 0 {
			groups = nil
		}
	}
	resources := make([]any, 0, len(groups))
	for _, g := range groups {
		var members []string
		if rq.wantMembers() {
			if members, err = h.cfg.Store.GroupMembers(rq.ctx, rq.conn, g.ID); err != nil {
				return err
			}
			if members == nil {
				members = []string{}
			}
		}
		resources = append(resources, rq.renderGroup(g, members))
	}
	writeJSON(rq.w, http.StatusOK, listResponse(offset, total, resources))
	return nil
}

// updateGroup applies change to a group's resource (members included, as
// a list of {"value": id}) and stores the difference.
func (h *Handler) updateGroup(rq *request, change func(res resource) (resource, error)) error {
	id := rq.r.PathValue("id")
	before, err := h.cfg.Store.GetDirectoryGroup(rq.ctx, rq.conn, id)
	if err != nil {
		return storeError("group", id, err)
	}
	if err := rq.checkIfMatch(before.Version); err != nil {
		return err
	}
	old, err := h.cfg.Store.GroupMembers(rq.ctx, rq.conn, id)
	if err != nil {
		return err
	}
	res := decodeResource(before.Resource)
	list := make([]any, 0, len(old))
	for _, m := range old {
		list = append(list, map[string]any{"value": m})
	}
	if len(list) > 0 {
		res["members"] = list
	}
	res, err = change(res)
	if err != nil {
		return err
	}
	now := memberIDs(res)
	g, err := groupRecord(rq.conn, id, res)
	if err != nil {
		return err
	}
	renamed := g.DisplayName != before.DisplayName
	if renamed || g.ExternalID != before.ExternalID || string(g.Resource) != string(before.Resource) {
		if _, err := h.cfg.Store.UpdateDirectoryGroup(rq.ctx, g, before.Version); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return &Error{Status: http.StatusPreconditionFailed, Detail: "the group changed while this request was served; retry"}
			}
			return storeError("group", id, err)
		}
	}
	var add, remove []string
	oldSet, nowSet := setOf(old), setOf(now)
	for _, m := range now {
		if !oldSet[m] {
			add = append(add, m)
		}
	}
	for _, m := range old {
		if !nowSet[m] {
			remove = append(remove, m)
		}
	}
	var changed []string
	if len(add)+len(remove) > 0 {
		if changed, err = h.cfg.Store.ChangeGroupMembers(rq.ctx, rq.conn, id, store.MemberChange{Add: add, Remove: remove}); err != nil {
			return storeError("group", id, err)
		}
	}
	var removed []string
	for _, m := range changed {
		if !nowSet[m] {
			removed = append(removed, m)
		}
	}
	h.cfg.Hooks.Audit(rq.ctx, Event{Type: EventGroupUpdated, ConnectionID: rq.conn, Group: &g,
		Detail: map[string]any{"group_id": id, "display_name": g.DisplayName, "added": len(changed) - len(removed),
			"removed": len(removed), "renamed": renamed}})
	affected := removed
	if renamed {
		affected = append(affected, now...)
	}
	if len(affected) > 0 {
		if err := h.cfg.Hooks.MembershipChanged(rq.ctx, rq.conn, leftGroup(affected, before.DisplayName)); err != nil {
			return err
		}
	}
	return h.writeGroup(rq, http.StatusOK, id)
}

func (h *Handler) replaceGroup(rq *request) error {
	in, err := rq.decodeObject()
	if err != nil {
		return err
	}
	res, err := normalize(in, &groupSchema, nil)
	if err != nil {
		return err
	}
	return h.updateGroup(rq, func(resource) (resource, error) { return res, nil })
}

func (h *Handler) patchGroup(rq *request) error {
	ops, err := parsePatch(rq.body)
	if err != nil {
		return err
	}
	return h.updateGroup(rq, func(res resource) (resource, error) {
		return res, applyPatch(res, &groupSchema, nil, ops)
	})
}

func (h *Handler) deleteGroup(rq *request) error {
	id := rq.r.PathValue("id")
	g, err := h.cfg.Store.GetDirectoryGroup(rq.ctx, rq.conn, id)
	if err != nil {
		return storeError("group", id, err)
	}
	if err := rq.checkIfMatch(g.Version); err != nil {
		return err
	}
	members, err := h.cfg.Store.DeleteDirectoryGroup(rq.ctx, rq.conn, id, h.cfg.Now())
	if err != nil {
		return storeError("group", id, err)
	}
	h.cfg.Hooks.Audit(rq.ctx, Event{Type: EventGroupUpdated, ConnectionID: rq.conn, Group: &g,
		Detail: map[string]any{"group_id": id, "display_name": g.DisplayName, "deleted": true, "removed": len(members)}})
	if len(members) > 0 {
		if err := h.cfg.Hooks.MembershipChanged(rq.ctx, rq.conn, leftGroup(members, g.DisplayName)); err != nil {
			return err
		}
	}
	rq.w.WriteHeader(http.StatusNoContent)
	return nil
}

func leftGroup(users []string, group string) map[string][]string {
	left := make(map[string][]string, len(users))
	for _, u := range users {
		left[u] = []string{group}
	}
	return left
}

func setOf(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
