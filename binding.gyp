{
  # node-gyp build of the same addon CMakeLists.txt builds (prebuildify uses
  # this file). libtorch is found by the same script and order as CMake.
  "targets": [
    {
      "target_name": "cmac",
      "sources": [
        "<!@(node -e \"const g=require('fs').readdirSync('native/core').filter(f=>f.endsWith('.cpp')).map(f=>'native/core/'+f);console.log(g.join(' '))\")",
        "<!@(node -e \"const g=require('fs').readdirSync('native/addon').filter(f=>f.endsWith('.cc')).map(f=>'native/addon/'+f);console.log(g.join(' '))\")",
        "<!@(node scripts/find-libav.js --gyp-sources)"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/core",
        "<!@(node scripts/find-torch.js --gyp-include)",
        "<!@(node scripts/find-libav.js --gyp-include)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "CMAC_VERSION=\"<!(node -p \"require('./package.json').version\")\"",
        "<!@(node scripts/find-torch.js --gyp-defines)",
        "<!@(node scripts/find-libav.js --gyp-defines)"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["<!(node scripts/find-torch.js --gyp-std)", "-frtti", "-fexceptions", "-O2", "-Wno-unused-parameter"],
      "libraries": ["<!@(node scripts/find-torch.js --gyp-libs)", "<!@(node scripts/find-libav.js --gyp-libs)"],
      "ldflags": ["<!@(node scripts/find-torch.js --gyp-ldflags)"]
    }
  ]
}
