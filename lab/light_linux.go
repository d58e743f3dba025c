package lab

import "context"

// addPodsUnlessLight creates the pods, except in a light lab.
func (l *Lab) addPodsUnlessLight(ctx context.Context) error {
	if l.Spec.Light {
		return nil
	}
	return l.addPods(ctx)
}
