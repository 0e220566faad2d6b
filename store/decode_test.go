package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/conveyorhq/conveyor"
	"github.com/conveyorhq/conveyor/store"
)

func ptr(s string) *string { return &s }

func TestDecodePayload(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		typ           string
		data, headers *string
		wantErr       string
		wantHeaders   map[string]string
	}{
		{name: "ok", typ: "t", data: ptr(`{"a":1}`), headers: ptr(`{"traceparent":"x","n":3}`), wantHeaders: map[string]string{"traceparent": "x", "n": "3"}},
		{name: "null data", typ: "t", data: nil, wantErr: "data is NULL"},
		{name: "invalid data", typ: "t", data: ptr(`{"a":`), wantErr: "data is not valid JSON"},
		{name: "headers array", typ: "t", data: ptr(`1`), headers: ptr(`[1]`), wantErr: "headers is not a JSON object"},
		{name: "headers invalid", typ: "t", data: ptr(`1`), headers: ptr(`{`), wantErr: "headers is not a JSON object"},
		{name: "null headers", typ: "t", data: ptr(`1`), headers: ptr(`null`)},
		{name: "empty type", typ: "", data: ptr(`1`), wantErr: "event_type is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := &conveyor.Event{Type: tc.typ}
			err := store.DecodePayload(ev, tc.data, tc.headers)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			if tc.wantHeaders != nil {
				require.Equal(t, tc.wantHeaders, ev.Headers)
			}
		})
	}
}

func TestCheckMigrations(t *testing.T) {
	t.Parallel()
	require.NoError(t, store.CheckMigrations(store.KnownMigrations, true))
	require.NoError(t, store.CheckMigrations(nil, false))
	require.ErrorContains(t, store.CheckMigrations([]string{"0001_initial", "0002_event_blocks_key", "0003_operations_audit"}, true), "0004_idempotency_constraint is not applied")
	require.ErrorIs(t, store.CheckMigrations(append(store.KnownMigrations, "0003_x"), true), conveyor.ErrSchemaUnknown)
}
