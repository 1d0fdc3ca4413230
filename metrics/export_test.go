package metrics

// ExemplarForTest exposes exemplar to the external tests.
var ExemplarForTest = exemplar
