package worker

// BuiltinTypes lists the job types this runner ships with: one line each.
func BuiltinTypes() []JobType {
	return []JobType{
		Demo(),
	}
}
