from services.diagnosis.app import main

main()
