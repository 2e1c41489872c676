package connwrap

import (
	"sync"
	"time"
)

// ManualAging makes the connections of a connector wrapped with o reach
// the end of their lifetime only when the returned function is called:
// then every connection opened so far does.
func ManualAging(o *Options) (ageAll func()) {
	var mu sync.Mutex
	var pending []func()
	o.afterFunc = func(_ time.Duration, f func()) stopper {
		mu.Lock()
		pending = append(pending, f)
		mu.Unlock()
		return manualTimer{}
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range pending {
			f()
		}
	}
}

type manualTimer struct{}

func (manualTimer) Stop() bool { return true }
