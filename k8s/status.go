package k8s

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/podrouter/podrouter/health"
)

// ConditionType is the Node condition podrouter maintains. Its status,
// reason and message are health.Snapshot.Condition's.
const ConditionType corev1.NodeConditionType = "PodrouterReady"

// Reasons of the Events the adapter records for the Node's own spec and
// the Secret; those for a change of health are health.Event*.
const (
	EventDrained         = "Drained"
	EventUndrained       = "Undrained"
	EventInvalidOverride = "InvalidPeeringOverride"
	EventInvalidNode     = "InvalidNodeSpec"
	EventCNIConfig       = "CNIConfigWritten"
	EventPasswordRotated = "BGPPasswordRotated"
	EventPasswordInvalid = "BGPPasswordInvalid"
)

// conditionStatus is the Node condition's status of c.
func conditionStatus(c health.Condition) corev1.ConditionStatus {
	if c.Ready {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

// eventType is the Event type of e.
func eventType(e health.Event) string {
	if e.Warning {
		return corev1.EventTypeWarning
	}
	return corev1.EventTypeNormal
}
