package clocksync

import (
	"testing"
	"time"
)

func TestNewSample(t *testing.T) {
	// Local clock 5 ms behind shared; 2 ms each way; master holds it 1 ms.
	const ms = int64(time.Millisecond)
	t1 := int64(1000 * ms)
	t2 := t1 + 5*ms + 2*ms
	t3 := t2 + 1*ms
	t4 := t1 + 2*ms + 1*ms + 2*ms
	s, err := NewSample(t1, t2, t3, t4)
	if err != nil {
		t.Fatal(err)
	}
	if s.Offset != 5*time.Millisecond || s.RTT != 4*time.Millisecond {
		t.Fatalf("got %+v, want offset 5ms rtt 4ms", s)
	}
	if _, err := NewSample(t1, t2, t3, t1-1); err == nil {
		t.Fatal("t4 before t1 accepted")
	}
	if _, err := NewSample(t1, t3, t2, t4); err == nil {
		t.Fatal("t3 before t2 accepted")
	}
}

func TestEstimator(t *testing.T) {
	ms := time.Millisecond
	s := func(offset, rtt time.Duration) Sample { return Sample{Offset: offset, RTT: rtt} }
	tests := []struct {
		name       string
		window     int
		samples    []Sample
		wantOffset time.Duration
		wantErr    time.Duration
		wantOK     bool
	}{
		{name: "empty"},
		{name: "one", samples: []Sample{s(3*ms, 2*ms)}, wantOffset: 3 * ms, wantErr: ms, wantOK: true},
		{
			name:       "delay spikes ignored",
			samples:    []Sample{s(10*ms, 2*ms), s(40*ms, 60*ms), s(11*ms, 4*ms), s(-30*ms, 130*ms)},
			wantOffset: 10 * ms, wantErr: ms, wantOK: true,
		},
		{
			name:       "equal rtt keeps the earliest",
			samples:    []Sample{s(1*ms, 2*ms), s(2*ms, 2*ms)},
			wantOffset: 1 * ms, wantErr: ms, wantOK: true,
		},
		{
			name:       "best sample slides out of the window",
			window:     3,
			samples:    []Sample{s(0, 1*ms), s(5*ms, 8*ms), s(6*ms, 6*ms), s(7*ms, 9*ms)},
			wantOffset: 6 * ms, wantErr: 3 * ms, wantOK: true,
		},
		{
			name:       "ring keeps evicting oldest",
			window:     2,
			samples:    []Sample{s(0, 1*ms), s(1*ms, 2*ms), s(2*ms, 3*ms), s(3*ms, 4*ms), s(4*ms, 10*ms)},
			wantOffset: 3 * ms, wantErr: 2 * ms, wantOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Estimator{Window: tt.window}
			for _, smp := range tt.samples {
				e.Add(smp)
			}
			offset, errBound, ok := e.Offset()
			if offset != tt.wantOffset || errBound != tt.wantErr || ok != tt.wantOK {
				t.Fatalf("Offset() = %v, %v, %v; want %v, %v, %v", offset, errBound, ok, tt.wantOffset, tt.wantErr, tt.wantOK)
			}
		})
	}
}

func TestEstimatorDefaultWindow(t *testing.T) {
	var e Estimator
	e.Add(Sample{Offset: 0, RTT: time.Microsecond})
	for range DefaultWindow - 1 {
		e.Add(Sample{Offset: time.Second, RTT: time.Millisecond})
	}
	if off, _, _ := e.Offset(); off != 0 {
		t.Fatalf("best sample evicted too early: %v", off)
	}
	e.Add(Sample{Offset: time.Second, RTT: time.Millisecond})
	if off, _, _ := e.Offset(); off != time.Second {
		t.Fatalf("best sample kept beyond the window: %v", off)
	}
}
