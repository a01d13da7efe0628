package worker

// BuiltinTypes lists the job types this runner ships with: one line each.
func BuiltinTypes() []JobType {
	return []JobType{
		Demo(),
	}
}

// AllTypes is the built-in types plus the exec types configured in the
// file at execConfig (none when it is empty).
func AllTypes(execConfig string, getenv func(string) string) ([]JobType, error) {
	types := BuiltinTypes()
	if execConfig == "" {
		return types, nil
	}
	execTypes, err := LoadExecTypes(execConfig, getenv)
	if err != nil {
		return nil, err
	}
	return append(types, execTypes...), nil
}
