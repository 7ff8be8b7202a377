module es4ps.io/tools/pause

go 1.24.0
