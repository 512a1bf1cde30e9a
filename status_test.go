package gozd

import (
	"encoding/json"
	"testing"
)

// FuzzParseStatus: the state file reader takes any bytes without panicking,
// and what it accepts names a master pid.
func FuzzParseStatus(f *testing.F) {
	full, _ := json.Marshal(&status{
		Pid: 42, Config: "/etc/app.conf", Master: &procIdentity{ExeDev: 2049, ExeIno: 1234, Start: 98765},
		Worker: 43, Gen: 2, HUPs: 1, Last: &reloadResult{Began: 1, OK: false, Error: "boom", OldWorker: 41},
	})
	f.Add(full)
	f.Add([]byte(`{"pid":1,"config":"/a.conf","worker":0,"gen":0,"hups":0}`))
	f.Add([]byte(`{"pid":-1}`))
	f.Add([]byte(`{"pid":1,"master":null,"last":{"began":"x"}}`))
	f.Add([]byte(`{"pid":1e400}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStatus(b)
		if err != nil {
			if st != nil {
				t.Fatalf("error %v with a status", err)
			}
			return
		}
		if st.Pid <= 0 || st.Worker < 0 {
			t.Fatalf("accepted pid %d, worker %d", st.Pid, st.Worker)
		}
	})
}
