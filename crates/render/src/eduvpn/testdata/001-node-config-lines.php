'useVpnDaemon' => true,
'profileList' => ['node-a'],

