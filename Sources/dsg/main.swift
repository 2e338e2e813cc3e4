import DSGCommandLine

// The commands live in DSGCommandLine, which dsg-mpi and the tests share.
DSGCommand.main()
